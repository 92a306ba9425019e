"""Make a trained checkpoint one of the models that ship inside the package.

    python scripts/ship_model.py CHECKPOINT --name smiling --command "python -m smile fit ..." \
        --commit COMMIT --fit "33.1 min" [--machine "2-core ..."]

writes ``smile/models/weights/NAME.safetensors`` (:func:`write_shipped`: weights only, with
the model's settings and this provenance in its header), then records the file's size and SHA-256 and
the provenance in the model card ``smile/models/weights/NAME.card.json`` (which must exist: its prose and
figures are written by hand, from the measurements), and writes the card as ``docs/models/NAME.md``.
Run it again after editing a card to refresh ``docs/models/NAME.md``: ``--card-only``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smile.io import atomic_write  # noqa: E402
from smile.trained.checkpoints import checkpoint_settings, describe, evaluation_weights, load_checkpoint  # noqa: E402
from smile.trained.shipped import (  # noqa: E402
    FORMAT_VERSION,
    METADATA_KEY,
    NAMES,
    card_markdown,
    checkpoint_dict,
    read_weights,
    shipped_models,
    weights_folder,
)


def write_shipped(checkpoint: Path, name: str, out: Path, provenance: dict) -> Path:
    """``checkpoint`` as the shipped model ``name`` (``out/NAME.safetensors``): the weights it predicts
    with (the averaged ones where it kept an EMA) and its thresholds, with its settings and ``provenance``
    (the command, commit and machine that made it) in the header. Its data settings are made those of any
    CelebA folder: ``data/celeba``, read as it was trained (the decoded cache where it used one)."""
    from safetensors.torch import save

    raw = load_checkpoint(checkpoint)
    settings = checkpoint_settings(raw)
    weights = evaluation_weights(raw)
    state = {key: value.detach().contiguous().clone() for key, value in sorted(weights.items())}
    data = {
        **settings.data,
        "root": "data/celeba",
        "cache_dir": None,
        "synthetic_images": None,
    }
    header = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "hyper_parameters": {**settings.model, "ema_decay": None, "compile": False},
        "datamodule_hyper_parameters": data,
        "epoch": raw.get("epoch"),
        "global_step": raw.get("global_step"),
        "pytorch-lightning_version": raw.get("pytorch-lightning_version"),
        "provenance": provenance,
    }
    path = out / f"{name}.safetensors"
    with atomic_write(path, "wb") as handle:
        handle.write(save(state, metadata={METADATA_KEY: json.dumps(header, sort_keys=True)}))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, nargs="?", help="the trained checkpoint (.ckpt)")
    parser.add_argument("--name", choices=NAMES, required=True)
    parser.add_argument("--command", help="the command that trained it")
    parser.add_argument("--commit", help="the commit it was trained at")
    parser.add_argument("--fit", help="how long the fit took, e.g. '33.1 min'")
    parser.add_argument("--machine", default="", help="what it was trained on")
    parser.add_argument(
        "--card-only", action="store_true", help="only write docs/models/NAME.md from the card"
    )
    args = parser.parse_args()
    folder = weights_folder()
    card_path = folder / f"{args.name}.card.json"
    card = json.loads(card_path.read_text())
    if not args.card_only:
        if args.checkpoint is None or not (args.command and args.commit and args.fit):
            parser.error("give the checkpoint, --command, --commit and --fit (or --card-only)")
        provenance = {
            "command": args.command,
            "commit": args.commit,
            "fit": args.fit,
            "machine": args.machine,
        }
        path = write_shipped(args.checkpoint, args.name, folder, provenance)
        data = path.read_bytes()
        card["weights"] = {"file": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        card["training"].update(provenance)
        with atomic_write(card_path) as handle:
            json.dump(card, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        print(f"Wrote {path} ({len(data):,} bytes) and {card_path}")
    docs = ROOT / "docs" / "models" / f"{args.name}.md"
    with atomic_write(docs) as handle:
        shipped_models.cache_clear()
        model = shipped_models()[args.name]
        handle.write(card_markdown(card, describe(checkpoint_dict(*read_weights(model)))))
    print(f"Wrote {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
