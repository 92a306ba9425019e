"""Users' own photos: face detection and alignment to CelebA's frame (:mod:`.faces`), the photo dataset,
the predictions CSV and annotated copies (:mod:`.dataset`), and synthetic photos with a known face
placement to measure detection and alignment against (:mod:`.synthetic`)."""
