"""The trained models that ship inside the package: their files against their cards, names wherever a
checkpoint is taken, refusal of a damaged file, the cards in docs/, and predicting on a photo with
nothing installed beyond the package's own dependencies."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import QUIET, ROOT, smile_env
from helpers.photos import needs_mtcnn

import smile
from smile.cli import main
from smile.errors import CheckpointError
from smile.trained import shipped
from smile.trained.checkpoints import load_checkpoint
from smile.trained.sources import resolve

MODELS = shipped.shipped_models()


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints written from shipped models go to a folder of the test's own."""
    monkeypatch.setenv("SMILE_CACHE", str(tmp_path / "cache"))


def test_both_models_ship_and_match_their_cards() -> None:
    assert set(MODELS) == set(shipped.NAMES)
    total = 0
    for name, model in MODELS.items():
        data = model.path.read_bytes()
        weights = model.card["weights"]
        assert weights["file"] == model.path.name
        assert (len(data), hashlib.sha256(data).hexdigest()) == (weights["bytes"], weights["sha256"]), name
        for extra in model.card.get("files", []):
            other = (model.path.parent / extra["file"]).read_bytes()
            assert hashlib.sha256(other).hexdigest() == extra["sha256"], extra["file"]
        total += len(data)
    assert total <= 10 * 2**20, f"{total:,} bytes of shipped weights"


@pytest.mark.parametrize("name", shipped.NAMES)
def test_the_card_in_docs_is_the_card_smile_models_prints(name: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["models", name]) == 0
    printed = capsys.readouterr().out
    assert printed == (ROOT / "docs" / "models" / f"{name}.md").read_text()
    assert MODELS[name].card["weights"]["sha256"] in printed and "non-commercial" in printed
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert all(line.split()[0] in shipped.NAMES for line in listing.splitlines()[: len(shipped.NAMES)])


def test_a_damaged_or_truncated_weights_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "weights"
    shutil.copytree(shipped.weights_folder(), folder)
    monkeypatch.setattr(shipped, "weights_folder", lambda: folder)
    shipped.shipped_models.cache_clear()
    try:
        path = folder / "smiling.safetensors"
        data = bytearray(path.read_bytes())
        data[-100] ^= 0x40  # one bit of one weight
        path.write_bytes(bytes(data))
        with pytest.raises(
            CheckpointError, match=r"smiling.safetensors: damaged or replaced: .* reinstall smile"
        ):
            smile.load("smiling")
        path.write_bytes(bytes(data[: len(data) // 2]))
        with pytest.raises(CheckpointError, match="damaged or replaced"):
            resolve("smiling").checkpoint_path()
        assert main(["predict", str(ROOT / "tests"), "--ckpt_path", "smiling"]) == 2
    finally:
        shipped.shipped_models.cache_clear()


def test_names_work_where_checkpoints_are_taken_and_a_file_of_that_name_wins(tmp_path: Path) -> None:
    path = resolve("attributes").checkpoint_path()
    checkpoint = load_checkpoint(path)
    assert len(checkpoint["hyper_parameters"]["attributes"]) == 40
    assert checkpoint["datamodule_hyper_parameters"]["root"] == "data/celeba"
    assert resolve("attributes").checkpoint_path() == path  # written once
    os.chdir(tmp_path)
    shutil.copy(path, tmp_path / "attributes")
    assert resolve("attributes").checkpoint_path() == Path("attributes")
    model = smile.load()
    assert model.backend == "shipped" and model.attributes == ["Smiling"] and not model.synthetic


@needs_mtcnn
def test_predict_on_a_photo_needs_no_dev_extras(tmp_path: Path) -> None:
    """The shipped model predicts with fer, h5py and TensorFlow unimportable, in a fresh process."""
    from helpers import photos as face_photos

    face_photos.faces()[0].save(tmp_path / "face.jpg", quality=95)
    blocked = ("fer", "h5py", "tensorflow", "pytest")
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from smile.cli import main\n"
        f"sys.exit(main(['predict', {str(tmp_path / 'face.jpg')!r}, '--out', {str(tmp_path / 'p.csv')!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=smile_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using the shipped model smiling" in result.stderr and "face.jpg" in result.stdout
    assert (tmp_path / "p.csv").read_text().splitlines()[1].split(",")[7] == "ok"
    dependencies = " ".join(json.dumps(d) for d in _dependencies())
    assert not any(name in dependencies for name in ("fer", "h5py", "tensorflow"))


def _dependencies() -> list[str]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_smile_test_on_the_sample_reproduces_the_card(sample_root: Path, tmp_path: Path) -> None:
    """``smile test --ckpt_path smiling`` on the sample's test split gives the card's accuracy."""
    os.chdir(tmp_path)
    args = ["test", "--ckpt_path", "smiling", "--data.root", str(sample_root), *QUIET]
    assert main([*args, "--trainer.accelerator", "cpu"]) == 0
    (report,) = tmp_path.glob("lightning_logs/version_*/report/metrics.json")
    summary = json.loads(report.read_text())["summary"]
    check = MODELS["smiling"].card["check"]
    assert (summary["num_images"], round(summary["mean_acc"], 4)) == (check["images"], check["test_acc"])
