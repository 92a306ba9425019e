"""The baseline to beat: OpenCV's Haar smile cascade against our model, on the same labelled faces.

Both classify the aligned CelebA images of one split (default: the test split of the real sample in
``../shared/celeba-sample``; a synthetic CelebA, generated in a temporary folder, when it is absent)
as Smiling or not. Printed side by side: accuracy and images per second, each measured end to end
(JPEG decoding, preprocessing, classification) on one thread.

The Haar rule (``haarcascade_smile.xml`` from ``opencv-python-headless<5``; ``common.HaarSmile``): the
aligned 178x218 image is turned grey, the mouth region (a box around CelebA's mean mouth corners, see
``common.REGIONS``) is cut out,
optionally enlarged, its histogram equalised, and the cascade run over it with
``detectMultiScale2(scaleFactor, minNeighbors=1, minSize=(36, 18))``. The image's score is the largest
number of raw windows merged into one detection (0 when none); it is called smiling when the score is
at least ``T`` (the same as ``detectMultiScale(minNeighbors=T-1)`` finding a smile, up to OpenCV's
removal of boxes nested in stronger ones). Region, enlargement, scale factor and ``T`` are chosen for
the best accuracy on the validation split only (``--tune-split``), then applied unchanged to the test
split.

Our model: a checkpoint (``--ckpt_path``, required: train one first, e.g. ``python -m smile fit --config
configs/notebook.yaml --data.root ../shared/celeba-sample``) with a ``Smiling`` output, fed the usual
evaluation transform, batches of 64, called smiling at p >= 0.5.

``--pixel-reference`` adds a reference row: ridge regression on the grey pixels of the training split.

``--photos N`` also puts the first N images of the split into synthetic "photos"
(:func:`smile.faces.synthetic.make_photo`: scaled 0.7-1.6x, rotated up to 10 degrees, on clutter, JPEG) and runs
the predict-on-photos path (MTCNN detection and alignment, then the model; the Haar rule on the same
aligned crops): accuracy there, and how far the model's probabilities on the recovered crops lie from
those on the original aligned images.

Usage::

    python benchmarks/smile_baseline.py --ckpt_path lightning_logs/version_0/checkpoints/best.ckpt \\
        [--root ../shared/celeba-sample] [--split test] [--tune-split val] [--photos 500] [--out b.json]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
import tempfile
from pathlib import Path

from common import REGIONS, SAMPLE, HaarSmile, load_classifier, load_split, probabilities, set_threads, timed

SCALES = (1.05, 1.1, 1.2)
ENLARGE = (1.0, 2.0)


def _rgb(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def tune_haar(files: list[Path], labels: list[int]) -> tuple[HaarSmile, dict]:
    """The setting with the best accuracy on ``files`` (the validation split)."""
    import numpy as np

    images = [_rgb(path) for path in files]
    truth = np.array(labels)
    best, grid = None, []
    for region, enlarge, scale in itertools.product(REGIONS, ENLARGE, SCALES):
        rule = HaarSmile(region, enlarge, scale)
        scores = np.array([rule.aligned_score(image) for image in images])
        for threshold in range(1, int(scores.max()) + 2):
            acc = float(((scores >= threshold) == truth).mean())
            grid.append(
                {"region": region, "enlarge": enlarge, "scale": scale, "threshold": threshold, "acc": acc}
            )
            if best is None or acc > best[0]:
                best = (acc, region, enlarge, scale, threshold)
    assert best is not None
    acc, region, enlarge, scale, threshold = best
    return HaarSmile(region, enlarge, scale, threshold), {"val_accuracy": acc, "grid": grid}


def run_haar(rule: HaarSmile, files: list[Path]) -> tuple[list[int], float]:
    """Predictions and images/s (decode + rule) over ``files``."""
    predictions, seconds = timed(lambda: [rule.predict(_rgb(path)) for path in files])
    return predictions, len(files) / seconds


def load_model(checkpoint: Path):
    """The checkpoint's model, the index of its Smiling output and its input size."""
    model, settings, _ = load_classifier(checkpoint)
    if "Smiling" not in model.attributes:
        raise SystemExit(f"{checkpoint} predicts {model.attributes}, not Smiling")
    return model, model.attributes.index("Smiling"), settings.image_size


def _inputs(files: list[Path], size: int) -> list:
    """``files`` decoded and through the evaluation transform at ``size``: the network's input tensors."""
    from PIL import Image

    from smile.data.pil_transforms import eval_transform

    transform = eval_transform(size)
    out = []
    for path in files:
        with Image.open(path) as image:
            out.append(transform(image.convert("RGB")))
    return out


def run_model(model, index: int, size: int, files: list[Path], batch_size: int = 64):
    """Probabilities and images/s (decode + eval transform + network, in batches) over ``files``."""
    probs, seconds = timed(lambda: probabilities(model, _inputs(files, size), batch_size)[:, index])
    return probs, len(files) / seconds


def _grey_features(images):
    import torch

    return torch.nn.functional.avg_pool2d(torch.stack(images).mean(1, keepdim=True), 2).flatten(1).double()


def pixel_reference(
    train_files: list[Path], train_labels: list[int], files: list[Path], ridge: float = 100.0
):
    """A reference point, not a contender: ridge regression (closed form) on the standardised grey levels
    of the 64x64 input averaged to 32x32, fitted on ``train_files``; predictions and images/s."""
    import numpy as np
    import torch

    grey = _grey_features(_inputs(train_files, 64))
    mean, std = grey.mean(0), grey.std(0) + 1e-6
    design = torch.cat([(grey - mean) / std, torch.ones(len(grey), 1, dtype=torch.float64)], 1)
    targets = torch.tensor(train_labels, dtype=torch.float64) * 2 - 1
    eye = ridge * torch.eye(design.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(design.T @ design + eye, design.T @ targets)

    def predict() -> np.ndarray:
        test = (_grey_features(_inputs(files, 64)) - mean) / std
        scores = (torch.cat([test, torch.ones(len(test), 1, dtype=torch.float64)], 1) @ weights).numpy()
        return (scores >= 0).astype(np.int64)

    predictions, seconds = timed(predict)
    return predictions, len(files) / seconds


def run_photos(
    model, index: int, size: int, rule: HaarSmile, files: list[Path], labels: list[int], seed: int
) -> dict:
    """The predict-on-photos path on synthetic photos of ``files``."""
    import numpy as np
    from PIL import Image

    from smile.data.pil_transforms import eval_transform
    from smile.faces.aligner import FaceAligner
    from smile.faces.synthetic import framing_error, make_photo

    transform = eval_transform(size)
    aligner = FaceAligner("mtcnn")
    originals, crops, kept, errors, photos = [], [], [], [], []
    for i, path in enumerate(files):
        original = Image.open(path).convert("RGB")
        photo, to_photo = make_photo(original, np.random.default_rng([seed, i]))
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=90)
        photos.append((original, buffer.getvalue(), to_photo))
    found, detect_seconds = timed(
        lambda: [aligner(Image.open(io.BytesIO(data)).convert("RGB")) for _, data, _ in photos]
    )
    for i, ((original, _, to_photo), faces) in enumerate(zip(photos, found)):
        if not faces:
            continue
        face = min(faces, key=lambda f: framing_error(to_photo, f.transform))  # the photo's one real face
        kept.append(i)
        errors.append(framing_error(to_photo, face.transform))
        originals.append(transform(original))
        crops.append(face.aligned)
    truth = np.array(labels)[kept]
    p_original = probabilities(model, originals)[:, index]
    p_photo = probabilities(model, crops, transform=transform)[:, index]
    haar_photo = np.array([rule.predict(np.asarray(crop)) for crop in crops])
    return {
        "photos": len(files),
        "faces_found": len(kept),
        "mean_framing_error_px": float(np.mean(errors)),
        "detect_align_images_per_s": len(files) / detect_seconds,
        "model_accuracy_on_originals": float(((p_original >= 0.5) == truth).mean()),
        "model_accuracy_on_photos": float(((p_photo >= 0.5) == truth).mean()),
        "haar_accuracy_on_photos": float((haar_photo == truth).mean()),
        "mean_abs_probability_difference": float(np.abs(p_photo - p_original).mean()),
        "label_agreement": float(((p_photo >= 0.5) == (p_original >= 0.5)).mean()),
        "mean_abs_probability_difference_between_faces": float(
            np.abs(p_original[:, None] - p_original[None, :]).sum() / max(len(kept) * (len(kept) - 1), 1)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ckpt_path",
        "--ckpt",
        dest="ckpt",
        type=Path,
        required=True,
        help="our model: a checkpoint with a Smiling output",
    )
    parser.add_argument(
        "--data.root",
        "--root",
        dest="root",
        type=Path,
        default=SAMPLE,
        help=f"CelebA copy (default {SAMPLE})",
    )
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--tune_split", "--tune-split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--threads", type=int, default=1, help="threads for both (default 1)")
    parser.add_argument("--photos", type=int, default=0, help="also run N synthetic photos (default 0)")
    parser.add_argument(
        "--haar_from",
        "--haar-from",
        type=Path,
        help="reuse the Haar setting of an earlier --out JSON instead of tuning again",
    )
    parser.add_argument("--limit", type=int, help="use only the first N images of each split (quick runs)")
    parser.add_argument(
        "--pixel-reference",
        action="store_true",
        help="also fit a linear classifier on grey pixels of the train split, as a reference point",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    import cv2
    import numpy as np
    import torch

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)

    root, source = args.root, str(args.root)
    if not (root / "list_attr_celeba.txt").is_file() and not (root / "celeba").is_dir():
        from smile.data.synthetic import generate_dataset

        root = generate_dataset(
            Path(tempfile.mkdtemp(prefix="smile-baseline-")) / "celeba", 1000, seed=args.seed
        )
        source = f"synthetic CelebA ({root}; the real sample {args.root} is absent)"
    model, index, size = load_model(args.ckpt)
    tune_files, tune_labels = load_split(root, args.tune_split)
    files, labels = load_split(root, args.split)
    if args.limit:
        tune_files, tune_labels, files, labels = (
            x[: args.limit] for x in (tune_files, tune_labels, files, labels)
        )
    truth = np.array(labels)
    for path in files:  # read once, so that neither method pays for the first disk read
        path.read_bytes()
    if args.haar_from:
        earlier = json.loads(args.haar_from.read_text())
        settings = earlier["haar_settings"]
        rule = HaarSmile(
            settings["region"], settings["enlarge"], settings["scaleFactor"], settings["threshold"]
        )
        tuning = earlier["haar_tuning"]
    else:
        print(
            f"{source}: tuning the Haar rule on {args.tune_split} ({len(tune_files)} images) ...",
            file=sys.stderr,
        )
        rule, tuning = tune_haar(tune_files, tune_labels)
    haar_pred, haar_speed = run_haar(rule, files)
    probs, model_speed = run_model(model, index, size, files)
    rows = [
        (
            "majority class of the tuning split",
            float((truth == int(np.mean(tune_labels) >= 0.5)).mean()),
            None,
        ),
        ("OpenCV Haar smile cascade", float((np.array(haar_pred) == truth).mean()), haar_speed),
        (f"smile model ({args.ckpt.name})", float(((probs >= 0.5) == truth).mean()), model_speed),
    ]
    if args.pixel_reference:
        train_files, train_labels = load_split(root, "train")
        pixel_pred, pixel_speed = pixel_reference(train_files, train_labels, files)
        name = "reference: ridge on 32x32 grey pixels"
        rows.append((name, float((pixel_pred == truth).mean()), pixel_speed))
    print(
        f"\n{args.split} split of {source}: {len(files)} images, Smiling in {truth.mean():.1%}; "
        f"{args.threads} thread(s), decoding included"
    )
    print(f"{'method':<40} {'accuracy':>9} {'images/s':>9}")
    for name, acc, speed in rows:
        print(f"{name:<40} {acc:>9.3f} {'-' if speed is None else f'{speed:.0f}':>9}")
    settings = rule.settings()
    print(
        f"Haar rule tuned on {args.tune_split} (accuracy {tuning['val_accuracy']:.3f} there): "
        + ", ".join(f"{k}={v}" for k, v in settings.items())
    )
    result = {
        "source": source,
        "split": args.split,
        "images": len(files),
        "smiling_fraction": float(truth.mean()),
        "threads": args.threads,
        "rows": [{"method": n, "accuracy": a, "images_per_s": s} for n, a, s in rows],
        "haar_settings": settings,
        "haar_tuning": tuning,
        "checkpoint": str(args.ckpt),
    }
    if args.photos:
        count = min(args.photos, len(files))
        photos = run_photos(model, index, size, rule, files[:count], labels[:count], args.seed)
        result["photos"] = photos
        print(f"\nOn {count} synthetic photos of the first {count} images (MTCNN, detection + alignment):")
        for key, value in photos.items():
            print(f"  {key:<48} {value:.3f}" if isinstance(value, float) else f"  {key:<48} {value}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
