"""Write a photo of one drawn face that smile's detector finds: OUT (default photo.jpg).

Run by .ci/wheel-check with the installed wheel's Python, from a folder outside the checkout, so it
uses the installed smile: the synthetic face generator (smile.data.synthetic) draws a smiling face,
placed on a plain background as tests/helpers/photos.py places them, and the default face aligner
(MTCNN) must find exactly one face in the saved JPEG.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
from PIL import Image

from smile.data.synthetic import render_face, sample_face, sample_identity
from smile.faces.aligner import FaceAligner


def main(out: str) -> int:
    aligner, rng = FaceAligner(), np.random.default_rng(0)
    for _ in range(50):
        params = sample_face(rng, sample_identity(rng))
        params = dataclasses.replace(params, attributes={**params.attributes, "Smiling": True})
        canvas = Image.new("RGB", (260, 300), (90, 120, 150))
        canvas.paste(render_face(params).image.convert("RGB"), (41, 41))
        canvas.save(out, quality=95)
        if len(aligner(Image.open(out).convert("RGB"))) == 1:
            print(f"{out}: one drawn face, found by the {aligner.detector_name} detector")
            return 0
    print(f"{out}: the detector found none of 50 drawn faces alone", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "photo.jpg"))
