"""``python -m smile export``: ONNX (run with onnxruntime) and ``torch.export`` (.pt2) files reproduce the
checkpoint, through torch's supported exporter and without its deprecation warnings."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from smile.cli import main
from smile.data.pil_transforms import eval_transform
from smile.system import AttributeClassifier
from smile.trained.exported import read_metadata
from smile.trained.inference import load_model

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model(smiling_checkpoint: Path) -> AttributeClassifier:
    return AttributeClassifier.load_from_checkpoint(
        smiling_checkpoint, map_location="cpu", weights_only=True
    ).eval()


def _expected(model: AttributeClassifier, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.predict_step(images, 0)


@pytest.fixture
def real_images(sample_or_synthetic: Path) -> torch.Tensor:
    """8 aligned faces (the real sample's test split when present, else synthetic) as the trainer sees them."""
    files = sorted((sample_or_synthetic / "img_align_celeba").glob("*.jpg"))[-8:]
    transform = eval_transform(64)
    return torch.stack([transform(Image.open(file).convert("RGB")) for file in files])


def _requirements(fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="ONNX export needs the export extra")
        pytest.importorskip("onnxruntime", reason="running the ONNX file needs onnxruntime")


@pytest.mark.parametrize(("fmt", "suffix"), [("onnx", ".onnx"), ("pt2", ".pt2")])
def test_exported_model_matches_the_checkpoint(
    fmt: str,
    suffix: str,
    smiling_checkpoint: Path,
    model: AttributeClassifier,
    real_images: torch.Tensor,
    tmp_path: Path,
) -> None:
    _requirements(fmt)
    out = tmp_path / f"model{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no deprecated exporter, nothing silenced
        warnings.simplefilter("error", FutureWarning)
        assert (
            main(["export", "--ckpt_path", str(smiling_checkpoint), "--format", fmt, "--out", str(out)]) == 0
        )
    generator = torch.Generator().manual_seed(3)
    run = load_model(out)
    for images in (
        torch.rand(1, 3, 64, 64, generator=generator),
        torch.rand(7, 3, 64, 64, generator=generator),  # any batch size
        real_images,
    ):
        got = run(images)
        expected = _expected(model, images)
        assert got.shape == expected.shape == (len(images), 1)
        assert (got - expected).abs().max() <= TOLERANCE
    real = _expected(model, real_images)
    assert real.std() > 0.01, "the comparison needs predictions that vary"
    metadata = read_metadata(out)
    assert metadata["attributes"] == ["Smiling"]
    assert metadata["input"] == {
        "name": "images",
        "shape": ["batch", 3, 64, 64],
        "crop_size": 178,
        "layout": "NCHW",
        "channels": "RGB",
        "dtype": "float32",
        "value_range": [0.0, 1.0],
    }
    assert "central 178x178 crop" in metadata["preprocessing"]
    assert metadata["image_transform"] == ["CentreWindow(image_size=64, crop_size=178)"]
    assert metadata["provenance"]["file"] == smiling_checkpoint.name
    assert metadata["provenance"]["producer"]["exporter"] == "torch.export"


def test_onnx_metadata_props_and_uint8_input(
    smiling_checkpoint: Path, model: AttributeClassifier, real_images: torch.Tensor, tmp_path: Path
) -> None:
    _requirements("onnx")
    import onnxruntime

    out = tmp_path / "uint8.onnx"
    args = ["export", "--ckpt_path", str(smiling_checkpoint), "--out", str(out), "--input_dtype", "uint8"]
    assert main(args) == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert props["attributes"] == '["Smiling"]' and "178x178" in props["preprocessing"]
    assert session.get_inputs()[0].type == "tensor(uint8)"
    pixels = (real_images * 255).round().to(torch.uint8)
    got = torch.from_numpy(session.run(None, {"images": pixels.numpy()})[0])
    assert (got - _expected(model, pixels.float() / 255)).abs().max() <= TOLERANCE


def test_default_output_is_beside_the_checkpoint(smiling_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "runs" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(smiling_checkpoint.read_bytes())
    assert main(["export", "--ckpt_path", str(checkpoint), "--format", "pt2", "--no_check"]) == 0
    assert (checkpoint.parent / "best.pt2").is_file()
    assert not list(checkpoint.parent.glob(".*.tmp")), "written atomically, no temporary left"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((checkpoint.parent / "best.pt2").stat().st_mode) == 0o666 & ~umask


def test_missing_checkpoint_is_a_short_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "--ckpt_path", str(tmp_path / "nope.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_torchscript_is_refused_with_the_alternatives(
    smiling_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["export", "--ckpt_path", str(smiling_checkpoint), "--format", "torchscript"]) == 2
    assert "--format pt2" in capsys.readouterr().err


def test_exported_graph_holds_the_network_and_activation_only(smiling_checkpoint: Path) -> None:
    from smile.trained.export import for_export

    model, _ = for_export(smiling_checkpoint)
    assert {name.split(".")[0] for name, _ in model.module.named_modules() if name} == {"net", "tensor_steps"}
    assert not any(isinstance(m, AttributeClassifier) for m in model.module.modules())


def test_test_time_views_are_built_into_the_export(
    smiling_checkpoint: Path, model: AttributeClassifier, real_images: torch.Tensor, tmp_path: Path
) -> None:
    """A checkpoint evaluated with the mirror and vertical shifts exports them: the file answers as
    the checkpoint does, and not as the network's single view."""
    _requirements("onnx")
    checkpoint = torch.load(smiling_checkpoint, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"].update(tta=True, tta_shifts=[-0.1, 0.05])
    views = tmp_path / "views.ckpt"
    torch.save(checkpoint, views)
    out = tmp_path / "views.onnx"
    assert main(["export", "--ckpt_path", str(views), "--out", str(out)]) == 0
    with_views = AttributeClassifier.load_from_checkpoint(views, map_location="cpu", weights_only=True).eval()
    assert read_metadata(out)["views"] == {"mirror": True, "shifts": [-0.1, 0.05]}
    got = load_model(out)(real_images)
    assert (got - _expected(with_views, real_images)).abs().max() <= TOLERANCE
    assert (got - _expected(model, real_images)).abs().max() > 10 * TOLERANCE


def test_onnx_users_are_told_to_align_faces_first_and_how() -> None:
    """The README says so (the ONNX metadata did, the README did not), and the aligner's docstrings name
    the field that holds the crop."""
    from smile.faces.aligner import Face, FaceAligner

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    export = readme.split("\n## Export\n", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "aligned face crops, not photos",
        'smile.load("best.onnx")',
        "FaceAligner()",
        "face.aligned",
    ):
        assert needed in export, needed
    assert "``aligned`` holds the crop" in " ".join(FaceAligner.__doc__.split())
    assert ":attr:`Face.aligned`" in FaceAligner.__call__.__doc__ and "aligned" in Face.__dataclass_fields__
