"""Shared fixtures: a small synthetic CelebA, and the real sample when it is beside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smile.data.synthetic import generate_dataset

#: The real CelebA sample: $SMILE_SAMPLE, else ../shared/celeba-sample beside the project.
SAMPLE_ROOT = Path(
    os.environ.get("SMILE_SAMPLE") or Path(__file__).resolve().parents[1].parent / "shared" / "celeba-sample"
)


@pytest.fixture(autouse=True)
def _restore_cwd():
    """Tests that run the CLI change into their own folder; every test starts where pytest started."""
    previous = Path.cwd()
    yield
    os.chdir(previous)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-image synthetic CelebA in the official layout (160 train, 20 val, 20 test)."""
    return generate_dataset(tmp_path_factory.mktemp("synthetic") / "celeba", 200, seed=0)


@pytest.fixture
def sample_root() -> Path:
    """The real CelebA sample ($SMILE_SAMPLE, else ../shared/celeba-sample); tests using it skip when it is absent."""
    if not (SAMPLE_ROOT / "list_attr_celeba.txt").is_file():
        pytest.skip(f"real CelebA sample not found at {SAMPLE_ROOT}")
    return SAMPLE_ROOT


@pytest.fixture
def sample_or_synthetic(request: pytest.FixtureRequest) -> Path:
    """The real sample when it is present, else the synthetic CelebA."""
    if (SAMPLE_ROOT / "list_attr_celeba.txt").is_file():
        return SAMPLE_ROOT
    return request.getfixturevalue("synthetic_root")


@pytest.fixture(scope="session")
def smiling_checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Smiling checkpoint whose predictions vary with the face, made in seconds instead of the minutes
    that training takes: the original CNN's random convolutions with its linear head fitted by ridge
    regression on 300 training images of the real sample (about 65% accurate on its test split), or of
    a synthetic CelebA when the sample is absent. Its data settings name a CelebA folder that does not
    exist, as a checkpoint from someone else's machine would."""
    import pytorch_lightning as pl
    import torch
    from PIL import Image

    from smile.data.layouts import read_attributes
    from smile.data.pil_transforms import eval_transform
    from smile.system import AttributeClassifier

    root = (
        SAMPLE_ROOT
        if (SAMPLE_ROOT / "list_attr_celeba.txt").is_file()
        else request.getfixturevalue("synthetic_root")
    )
    table = read_attributes(root / "list_attr_celeba.txt")
    count = min(300, len(table.files) // 2)
    transform = eval_transform(64)
    images = torch.stack(
        [
            transform(Image.open(root / "img_align_celeba" / name).convert("RGB"))
            for name in table.files[:count]
        ]
    )
    targets = torch.as_tensor(table.columns(["Smiling"])[:count, 0], dtype=torch.float32) * 2 - 1
    torch.manual_seed(0)
    model = AttributeClassifier(["Smiling"]).eval()
    with torch.no_grad():
        features = model.net.features(images)
        mean, std = features.mean(0), features.std(0) + 1e-6
        design = torch.cat([(features - mean) / std, torch.ones(count, 1)], 1)
        weights = torch.linalg.solve(
            design.T @ design + 100.0 * torch.eye(design.shape[1]), design.T @ targets
        )
        scale = 2.0 / float((design @ weights).std())  # logits with a standard deviation of 2
        model.net.head.weight.copy_((weights[:-1] / std * scale)[None])
        model.net.head.bias.fill_(float(weights[-1] - (weights[:-1] * mean / std).sum()) * scale)
    trainer = pl.Trainer(
        logger=False, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(model)
    path = tmp_path_factory.mktemp("checkpoint") / "smiling.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["datamodule_hyper_parameters"] = {
        "root": str(tmp_path_factory.getbasetemp() / "no-such-celeba"),
        "attributes": ["Smiling"],
        "image_size": 64,
        "synthetic_images": 100,  # would be generated at root by a fit; predicting photos must not
    }
    torch.save(checkpoint, path)
    return path
