"""Photos in which no face is found: which whole-image framing, and how well the fallback does.

``python -m smile predict PHOTO ...`` takes a photo without a detected face as a tight face crop
(``--no_face whole``, CSV status ``whole_image``): its central square is put on a square of CelebA's
178x218 frame (:data:`smile.faces.geometry.WHOLE_IMAGE_FRAMINGS`: ``window``, the 178x178 window the
network sees; ``box``, the face square a detector's box covers). This script

1. chooses the framing on the sample's *validation* split: each aligned image is cut to a square face
   crop around MTCNN's face box, the box's side grown by each of ``--margins`` (tight to loose crops, as
   face-crop tools save them), and every framing predicts on the crops as whole images; the framing
   with the best mean accuracy wins (the accuracy on the aligned originals is printed beside it);
2. measures, on celeba-wild (a test set: a measurement, nothing is chosen on it), through predict's
   own detection (:class:`smile.photos.pipeline.PhotoPipeline`, detector ``auto``): how many images had no
   detection, the Smiling accuracy on them with each framing, and on the detected ones (largest face).
   Also the accuracy with every image predicted whole, as if none had been detected: the fallback on
   real face crops, whatever the detector finds. ``--from-peers PEERS_JSON`` takes the images without a detection (and the figures on the detected
   ones) from a ``benchmarks/peers.py`` run of the same checkpoint instead of detecting again.

Usage::

    python benchmarks/no_face.py --model CKPT [--sample ../shared/celeba-sample] \\
        [--wild ../shared/celeba-wild] [--val-limit 500] [--out benchmarks/results/no-face.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, SAMPLE, WILD, largest
from peers import ProjectModel, sample_split, wild_set


def _probabilities(model: ProjectModel, crops: list) -> np.ndarray:
    """P(Smiling) of 178x218 crops through the evaluation transform."""
    return model.probabilities(crops)[:, model.index]


def face_crop(image, box: Sequence[float], margin: float):
    """The square crop of ``image`` centred on the face ``box`` (x, y, w, h), its side the box's larger
    side grown by ``margin`` (0.25: a quarter more); parts outside the image are black, as a crop tool
    pads them."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    left, top = round(cx - side / 2.0), round(cy - side / 2.0)
    return image.crop((left, top, left + round(side), top + round(side)))


def choose_framing(
    model: ProjectModel, sample: Path, limit: int, margins: Sequence[float]
) -> tuple[str, dict[str, Any]]:
    """The framing with the best mean accuracy on validation face crops, and the figures."""
    from smile.faces.aligner import FaceAligner
    from smile.faces.geometry import WHOLE_IMAGE_FRAMINGS, warp, whole_image_transform
    from smile.faces.images import load_photo

    data = sample_split(sample, "val", limit)
    aligner = FaceAligner("auto")
    originals, crops, labels = [], {m: [] for m in margins}, []
    for file, label in zip(data.files, data.labels):
        image = load_photo(file)
        found = aligner.detect(image)
        if not found:
            continue
        box = found[largest([d.box for d in found])].box
        originals.append(image)
        labels.append(label)
        for margin in margins:
            crops[margin].append(face_crop(image, box, margin))
    truth = np.array(labels)
    figures: dict[str, Any] = {
        "val_images": len(data.files),
        "with_a_face": len(truth),
        "aligned_accuracy": float(((_probabilities(model, originals) > 0.5) == truth).mean()),
    }
    for name in WHOLE_IMAGE_FRAMINGS:
        per_margin = {}
        for margin in margins:
            framed = [warp(crop, whole_image_transform(crop.size, name)) for crop in crops[margin]]
            per_margin[str(margin)] = float(((_probabilities(model, framed) > 0.5) == truth).mean())
        figures[name] = {"by_margin": per_margin, "mean": float(np.mean(list(per_margin.values())))}
    chosen = max(WHOLE_IMAGE_FRAMINGS, key=lambda name: figures[name]["mean"])
    return chosen, figures


def measure_wild(model: ProjectModel, wild: Path, peers_json: Path | None = None) -> dict[str, Any]:
    """Detected vs. not on celeba-wild, the latter predicted whole with each framing."""
    from smile.faces.aligner import WHOLE_IMAGE
    from smile.photos.pipeline import PhotoPipeline
    from smile.photos.predictions import OK

    data = wild_set(wild)
    label_of = dict(zip(data.files, data.labels))
    if peers_json is not None:
        by_status = _peers_figures(peers_json, model)
        whole = [data.files[0].parent / name for name in by_status[WHOLE_IMAGE]["files"]]
        figures: dict[str, Any] = {
            "images": len(data.files),
            "detected": by_status[OK] | {"from": str(peers_json)},
            "no_detection": {"n": len(whole), "files": [p.name for p in whole]},
        }
    else:
        picks, whole = [], []  # (photo, its largest face) of the photos with a detection; the others
        for photo in PhotoPipeline(model.image_size, model.crop_size).photos(data.files):  # no_face whole
            detected = [face for face in photo.faces if face.method != WHOLE_IMAGE]
            if detected:
                picks.append((photo.source, detected[largest([face.box for face in detected])]))
            elif photo.faces:
                whole.append(photo.source)
        probs = _probabilities(model, [face.aligned for _, face in picks])
        truth = np.array([label_of[source] for source, _ in picks])
        figures = {
            "images": len(data.files),
            "detected": {"n": len(picks), "accuracy": float(((probs > 0.5) == truth).mean())},
            "no_detection": {"n": len(whole), "files": [p.name for p in whole]},
        }
    figures["no_detection"] |= _whole_accuracy(model, whole, label_of)
    # every image predicted whole, as if none had been detected: the fallback on real face crops
    figures["all_whole"] = _whole_accuracy(model, data.files, label_of)
    return figures


def _whole_accuracy(model: ProjectModel, files: Sequence[Path], label_of: dict) -> dict[str, Any]:
    """Accuracy of each framing with ``files`` predicted whole (None when there are none)."""
    from smile.faces.geometry import WHOLE_IMAGE_FRAMINGS, warp, whole_image_transform
    from smile.faces.images import load_photo

    truth = np.array([label_of[path] for path in files])
    figures: dict[str, Any] = {"positive_rate": float(truth.mean()) if len(truth) else None}
    for name in WHOLE_IMAGE_FRAMINGS:
        framed = [warp(image, whole_image_transform(image.size, name)) for image in map(load_photo, files)]
        probs = _probabilities(model, framed)
        figures[name] = float(((probs > 0.5) == truth).mean()) if len(truth) else None
    return figures


def _peers_figures(path: Path, model: ProjectModel) -> dict[str, Any]:
    """The celeba-wild figures by status of ``model``'s checkpoint in a peers.py JSON."""
    report = json.loads(path.read_text())
    for name, info in report.get("info", {}).items():
        if (
            isinstance(info, dict)
            and Path(info.get("checkpoint", "")).resolve() == model.checkpoint.resolve()
        ):
            figures = report["rows"].get(name, {}).get("celeba-wild", {}).get("by_status")
            if figures and "files" in figures.get("whole_image", {}):
                return figures
    raise SystemExit(
        f"{path} holds no celeba-wild figures of {model.checkpoint} (run peers.py with it first)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a checkpoint with a Smiling output")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--wild", type=Path, default=WILD)
    parser.add_argument("--val-limit", type=int, default=500)
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    parser.add_argument("--from-peers", type=Path, default=None, metavar="PEERS_JSON")
    parser.add_argument("--skip-wild", action="store_true", help="the framing choice on validation only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "no-face.json")
    args = parser.parse_args(argv)
    import torch

    from smile.faces.geometry import WHOLE_IMAGE_FRAMING
    from smile.io import atomic_write

    torch.set_num_threads(2)
    model = ProjectModel("model", args.model)
    report: dict[str, Any] = {"checkpoint": str(args.model), "default_framing": WHOLE_IMAGE_FRAMING}
    if (args.sample / "list_eval_partition.txt").is_file():
        chosen, figures = choose_framing(model, args.sample, args.val_limit, args.margins)
        report["validation"] = figures | {"chosen": chosen}
        print(f"validation face crops: {json.dumps(figures)}\nchosen framing: {chosen}")
    else:
        print(f"skipped the framing choice: {args.sample} holds no list_eval_partition.txt")
    if args.skip_wild:
        pass
    elif (args.wild / "list_attr_celeba.txt").is_file():
        wild = measure_wild(model, args.wild, args.from_peers)
        report["celeba_wild"] = wild
        shown = {k: v for k, v in wild["no_detection"].items() if k != "files"}
        print(f"celeba-wild: {wild['images']} images, detected {wild['detected']}, no detection {shown}")
        print(f"celeba-wild, every image predicted whole: {wild['all_whole']}")
    else:
        print(f"skipped celeba-wild: {args.wild} holds no list_attr_celeba.txt")
    with atomic_write(args.out) as handle:
        json.dump(report, handle, indent=1)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
