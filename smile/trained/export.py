"""``python -m smile export``: a checkpoint as an ONNX or ``torch.export`` file that runs without this project.

The exported model is the network and its output activation only (no LightningModule): it takes a
batch of aligned face images, ``(N, 3, S, S)`` RGB in NCHW layout (``S`` is the run's
``data.image_size``, 64 by default), and returns ``(N, K)`` probabilities, one per attribute. By
default the input is float32 in [0, 1] (what ``torchvision.transforms.ToTensor`` gives);
``--input_dtype uint8`` exports a model that takes the raw 0-255 pixels instead. Anything the
evaluation transform does after ``ToTensor`` (a ``Normalize``, say) is built into the exported graph,
and so are the averaged weights (``model.ema_decay``) and the test-time views (``model.tta``,
``model.tta_shifts``) when the run used them. Both formats go through ``torch.export``, torch's
supported exporter: ONNX by ``torch.onnx.export(..., dynamo=True)``, ``pt2`` by ``torch.export.save``.

The images must be prepared as in training: the face aligned to CelebA's 178x218 framing
(``img_align_celeba``; :class:`smile.faces.aligner.FaceAligner` for other photos), the central 178x178 crop,
resized to SxS; ``smile.load("model.onnx")`` does all of it. The file records this, the attribute
names and the checkpoint it came from as JSON (its :class:`~smile.trained.description.ModelDescription`,
:data:`~smile.trained.exported.METADATA_KEY`): in the ONNX model's
``metadata_props`` (plus ``attributes`` and ``preprocessing`` as separate keys), and in the ``.pt2``
archive as the extra file ``smile.json``::

    import json, onnxruntime
    session = onnxruntime.InferenceSession("best.onnx")
    meta = json.loads(session.get_modelmeta().custom_metadata_map["smile"])
    probs = session.run(None, {"images": batch})[0]  # batch: float32 (N, 3, 64, 64) in [0, 1]

    import torch
    extra = {"smile.json": ""}
    model = torch.export.load("best.pt2", extra_files=extra).module()
    meta = json.loads(extra["smile.json"])

After writing, the file is loaded back (ONNX through onnxruntime when installed) as an
:class:`~smile.trained.inference.InferenceModel` and checked against the model it came from on random
images, to 1e-4.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from smile.console import say
from smile.data.celeba import centre_window
from smile.data.pil_transforms import CentreWindow
from smile.errors import SmileError
from smile.install import DISTRIBUTION, install_hint
from smile.io import write_atomically
from smile.trained.exported import EXTRA_FILE, INPUT_NAME, METADATA_KEY, OUTPUT_NAME
from smile.trained.inference import InferenceModel, load_model
from smile.trained.sources import ModelSource, resolve

FORMATS = ("onnx", "pt2")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2"}
INPUT_DTYPES = ("float32", "uint8")
TOLERANCE = 1e-4
MIN_OPSET = 18  # the torch.export-based ONNX exporter's lowest


class ExportError(SmileError):
    """The model cannot be exported, or the exported file does not reproduce the checkpoint."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def for_export(
    source: str | Path | ModelSource, input_dtype: str = "float32"
) -> tuple[InferenceModel, dict[str, Any]]:
    """The model to export (its torch module takes ``input_dtype`` pixels) and the metadata to record:
    its :class:`~smile.trained.description.ModelDescription` as JSON, with what a reader of the file
    needs to prepare images (the input's and output's names, the preprocessing in words)."""
    if input_dtype not in INPUT_DTYPES:
        raise ExportError(f"input dtype {input_dtype!r}: choose one of {', '.join(INPUT_DTYPES)}")
    model = load_model(source)
    if model.source.kind not in ("checkpoint", "shipped"):
        raise ExportError(
            f"{model.source.path}: export takes a checkpoint or a shipped model, not an exported file"
        )
    path = model.source.path
    description = model.description.with_changes(
        input_dtype=input_dtype,
        provenance={
            **model.description.provenance,
            "file": path.name,
            "sha256": _sha256(path),
            "producer": {"smile": _version(DISTRIBUTION), "torch": torch.__version__, "exporter": "torch.export"},
        },
    )
    if input_dtype == "uint8":  # the same network and views, taking the 0-255 pixels
        module = model.module
        assert module is not None
        module.uint8 = True
    size, crop = description.image_size, description.crop_size
    top = centre_window(crop)[1]
    scaling = (
        "the 0-255 pixel values as they are" if input_dtype == "uint8" else "pixel values divided by 255"
    )
    metadata = description.to_json()
    metadata["input"]["name"] = INPUT_NAME
    metadata["output"] = {
        "name": OUTPUT_NAME,
        "shape": ["batch", len(description.attributes)],
        "dtype": "float32",
        "meaning": "probability of each attribute, in the order of 'attributes'; an attribute is "
        "predicted present when its probability is greater than its entry in 'thresholds'",
    }
    metadata["preprocessing"] = (
        f"Align the face to CelebA's 178x218 framing (eyes, nose and mouth corners where img_align_celeba "
        f"has them; smile.faces.aligner.FaceAligner does this for any photo: each Face's 'aligned' crop), "
        f"take the central {crop}x{crop} crop (rows {top}-{top + crop - 1} of the 218), resize it to "
        f"{size}x{size} with bilinear interpolation and antialiasing (torchvision Resize on a PIL image, i.e. "
        f"PIL's BILINEAR), and give the RGB channels in NCHW layout as {input_dtype}: {scaling}."
    )
    metadata["image_transform"] = [repr(CentreWindow(size, crop))]
    model.description = description
    return model, metadata


def _example(metadata: dict[str, Any], batch: int = 2, seed: int = 0) -> Tensor:
    _, channels, height, width = metadata["input"]["shape"]
    generator = torch.Generator().manual_seed(seed)
    if metadata["input"]["dtype"] == "uint8":
        return torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8, generator=generator)
    return torch.rand(batch, channels, height, width, generator=generator)


def _exported_program(model: nn.Module, metadata: dict[str, Any]) -> torch.export.ExportedProgram:
    """``model`` captured by ``torch.export`` with a dynamic batch size."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with torch.no_grad():
        return torch.export.export(
            model, (_example(metadata),), dynamic_shapes={"images": {0: batch}}, strict=False
        )


def to_onnx(model: nn.Module, metadata: dict[str, Any], opset: int = MIN_OPSET) -> bytes:
    """The ONNX model, as bytes, with the metadata in its ``metadata_props``: ``torch.onnx.export`` with
    ``dynamo=True`` (the ``torch.export``-based exporter)."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter writes the graph with it)
    except ImportError as err:
        raise ExportError(f"ONNX export needs {err.name}: {install_hint('export')}") from err
    if opset < MIN_OPSET:
        raise ExportError(f"--opset {opset}: torch's ONNX exporter writes opset {MIN_OPSET} or newer")
    program = torch.onnx.export(
        _exported_program(model, metadata),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    proto = program.model_proto
    proto.doc_string = "smile attribute classifier: " + metadata["preprocessing"]
    for key, value in (
        (METADATA_KEY, json.dumps(metadata)),
        ("attributes", json.dumps(metadata["attributes"])),
        ("preprocessing", metadata["preprocessing"]),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def to_pt2(model: nn.Module, metadata: dict[str, Any]) -> bytes:
    """The ``torch.export`` archive, as bytes, with the metadata as the extra file ``smile.json``."""
    buffer = io.BytesIO()
    torch.export.save(
        _exported_program(model, metadata), buffer, extra_files={EXTRA_FILE: json.dumps(metadata)}
    )
    return buffer.getvalue()


def check_export(path: Path, reference: InferenceModel, metadata: dict[str, Any]) -> float | None:
    """Largest difference between the file's probabilities and ``reference``'s on 8 random images; raises
    :class:`ExportError` above :data:`TOLERANCE`. ``None`` when ONNX cannot be run (no onnxruntime)."""
    if path.suffix == ".onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
    images = _example(metadata, batch=8, seed=2)
    error = float((load_model(path)(images) - reference(images)).abs().max())
    if not error <= TOLERANCE:
        raise ExportError(f"{path}: the exported model differs from the checkpoint by {error:.2e}")
    return error


def export(
    source: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    input_dtype: str = "float32",
    opset: int = MIN_OPSET,
    check: bool = True,
) -> Path:
    """Export ``source`` (a checkpoint, ``best``/``last`` or a shipped model) to ``out`` (default: beside
    the checkpoint, ``<name>.onnx`` or ``<name>.pt2``; for a shipped model, here); returns the path written."""
    if fmt == "torchscript":
        raise ExportError(
            "TorchScript is deprecated in torch; export --format pt2 (torch.export) or onnx instead"
        )
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    found = resolve(source)
    model, metadata = for_export(found, input_dtype)
    default = Path(found.shipped.name) if found.shipped is not None else found.path
    target = Path(out) if out is not None else default.with_name(default.stem + SUFFIXES[fmt])
    if target.suffix != SUFFIXES[fmt]:
        raise ExportError(f"{target}: a {fmt} file's name must end in {SUFFIXES[fmt]}")
    assert model.module is not None
    data = to_onnx(model.module, metadata, opset) if fmt == "onnx" else to_pt2(model.module, metadata)
    write_atomically(target, data)
    if check:
        error = check_export(target, model, metadata)
        note = "not checked (onnxruntime not installed)" if error is None else f"max difference {error:.1e}"
        say(f"Checked {target} against the checkpoint: {note}")
    return target
