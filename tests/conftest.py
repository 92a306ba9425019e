"""Shared fixtures: a small synthetic CelebA, and the real sample when it is beside the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from smile.synthetic import generate_dataset

SAMPLE_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "celeba-sample"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-image synthetic CelebA in the official layout (160 train, 20 val, 20 test)."""
    return generate_dataset(tmp_path_factory.mktemp("synthetic") / "celeba", 200, seed=0)


@pytest.fixture
def sample_root() -> Path:
    """The 6,000-image real CelebA sample; tests using it skip when it is absent."""
    if not (SAMPLE_ROOT / "list_attr_celeba.txt").is_file():
        pytest.skip(f"real CelebA sample not found at {SAMPLE_ROOT}")
    return SAMPLE_ROOT
