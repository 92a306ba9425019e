"""Predicting on users' photos: the photo pipeline (:mod:`.pipeline`: read, find and align the faces, the
evaluation transform, batch) and what a prediction writes (:mod:`.predictions`: the CSV, the terminal's
table, annotated copies)."""
