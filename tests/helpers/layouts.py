"""The other CelebA layouts, made from an official-layout copy: torchvision's folder and the Kaggle mirror."""

from __future__ import annotations

import shutil
from pathlib import Path

from smile.data.celeba import CELEBA_ATTRIBUTES


def as_torchvision(official: Path, root: Path) -> Path:
    """Copy an official-layout dataset to ``root/celeba/`` (torchvision's layout)."""
    shutil.copytree(official, root / "celeba")
    return root


def as_kaggle(official: Path, root: Path) -> Path:
    """Rewrite an official-layout dataset in the Kaggle mirror's layout (CSV files, nested image folder)."""
    shutil.copytree(official / "img_align_celeba", root / "img_align_celeba" / "img_align_celeba")
    lines = (official / "list_attr_celeba.txt").read_text().splitlines()
    rows = [",".join(line.split()) for line in lines[2:]]
    (root / "list_attr_celeba.csv").write_text(
        "\n".join(["image_id," + ",".join(CELEBA_ATTRIBUTES), *rows]) + "\n"
    )
    partition = [
        ",".join(line.split()) for line in (official / "list_eval_partition.txt").read_text().splitlines()
    ]
    (root / "list_eval_partition.csv").write_text("\n".join(["image_id,partition", *partition]) + "\n")
    return root
