"""Users' own photos: face detection and alignment to CelebA's frame (:mod:`.faces`), and the photo
dataset, the predictions CSV and annotated copies (:mod:`.dataset`)."""
