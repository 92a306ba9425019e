"""Faces in photos: reading photos (:mod:`~smile.faces.images`), finding faces
(:mod:`~smile.faces.detectors`) and framing each one as CelebA's aligned images are framed
(:mod:`~smile.faces.geometry`, :mod:`~smile.faces.aligner`), with one set of defaults
(:mod:`~smile.faces.options`). It knows nothing of models or datasets: the photo pipeline
(:mod:`smile.photos`) and the data layer build on it."""
