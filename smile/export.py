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
names and the checkpoint it came from as JSON (:data:`METADATA_KEY`): in the ONNX model's
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

After writing, the file is loaded back (ONNX through onnxruntime when installed) and checked against the
checkpoint's own predictions (its ``predict_step``) on random images, to 1e-4.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from smile import restore
from smile.checkpoints import checkpoint_settings, load_checkpoint, resolve_checkpoint
from smile.data.celeba import centre_window
from smile.data.pil_transforms import eval_transform, split_transform
from smile.errors import SmileError
from smile.io import atomic_write
from smile.models.views import ProbabilityModel
from smile.system import AttributeClassifier

FORMATS = ("onnx", "pt2")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2"}
INPUT_DTYPES = ("float32", "uint8")
METADATA_KEY = "smile"
EXTRA_FILE = "smile.json"
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
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


def load_for_export(
    checkpoint_path: str | Path, input_dtype: str = "float32"
) -> tuple[ProbabilityModel, dict[str, Any]]:
    """The checkpoint's network and activation for export (eval mode, on the CPU) and the metadata to record."""
    _, model, metadata = _load(checkpoint_path, input_dtype)
    return model, metadata


def _load(
    checkpoint_path: str | Path, input_dtype: str = "float32"
) -> tuple[AttributeClassifier, ProbabilityModel, dict[str, Any]]:
    if input_dtype not in INPUT_DTYPES:
        raise ExportError(f"input dtype {input_dtype!r}: choose one of {', '.join(INPUT_DTYPES)}")
    path = Path(checkpoint_path)
    checkpoint = load_checkpoint(path)
    classifier = restore.classifier(checkpoint)
    settings = checkpoint_settings(checkpoint)
    size, crop = settings.image_size, settings.crop_size
    top = centre_window(crop)[1]
    try:
        before, after = split_transform(eval_transform(size, crop))
    except ValueError as err:
        raise ExportError(str(err)) from err
    mirror, shifts = classifier.test_time_views
    model = ProbabilityModel(classifier.evaluation_net, after, input_dtype == "uint8", mirror, shifts).eval()
    value_range = [0, 255] if input_dtype == "uint8" else [0.0, 1.0]
    scaling = (
        "the 0-255 pixel values as they are" if input_dtype == "uint8" else "pixel values divided by 255"
    )
    preprocessing = (
        f"Align the face to CelebA's 178x218 framing (eyes, nose and mouth corners where img_align_celeba "
        f"has them; smile.faces.aligner.FaceAligner does this for any photo), take the central {crop}x{crop} "
        f"crop (rows {top}-{top + crop - 1} of the 218), resize it to {size}x{size} with bilinear interpolation and "
        f"antialiasing (torchvision Resize on a PIL image, i.e. PIL's BILINEAR), and give the RGB channels "
        f"in NCHW layout as {input_dtype}: {scaling}."
    )
    metadata = {
        "format_version": 1,
        "attributes": list(classifier.attributes),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, size, size],
            "crop_size": crop,
            "layout": "NCHW",
            "channels": "RGB",
            "dtype": input_dtype,
            "value_range": value_range,
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(classifier.attributes)],
            "dtype": "float32",
            "meaning": "probability of each attribute, in the order of 'attributes'; an attribute is "
            "predicted present when its probability is greater than its entry in 'thresholds'",
        },
        "thresholds": {name: float(t) for name, t in zip(classifier.attributes, classifier.thresholds)},
        "threshold_criterion": classifier.hparams.get("threshold_criterion"),
        "preprocessing": preprocessing,
        "image_transform": [repr(step) for step in before],
        "built_in_transform": [repr(step) for step in after],
        "checkpoint": {
            "file": path.name,
            "sha256": _sha256(path),
            "epoch": checkpoint.get("epoch"),
            "global_step": checkpoint.get("global_step"),
        },
        "model": settings.model,
        "trained_on": "synthetic faces" if settings.synthetic else "photographs of faces",
        "producer": {"smile": _version("smile-faces"), "torch": torch.__version__, "exporter": "torch.export"},
    }
    return classifier, model, metadata


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
        raise ExportError(f"ONNX export needs {err.name}: pip install 'smile-faces[export]' (from a clone: pip install '.[export]')") from err
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


def load_exported(path: str | Path) -> Callable[[Tensor], Tensor]:
    """A function images -> probabilities that runs an exported file (``.onnx`` through onnxruntime,
    else a ``torch.export`` archive)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: torch.from_numpy(session.run(None, {INPUT_NAME: images.numpy()})[0])
    module = torch.export.load(str(path)).module()

    def run(images: Tensor) -> Tensor:
        with torch.no_grad():
            return module(images)

    return run


def run_exported(path: str | Path, images: Tensor) -> Tensor:
    """Probabilities from an exported file."""
    return load_exported(path)(images)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of an exported file."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props[METADATA_KEY])
    extra = {EXTRA_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[EXTRA_FILE])


def check_export(path: Path, reference: Callable[[Tensor], Tensor], metadata: dict[str, Any]) -> float | None:
    """Largest difference between the file's probabilities and ``reference``'s on 8 random images; raises
    :class:`ExportError` above :data:`TOLERANCE`. ``None`` when ONNX cannot be run (no onnxruntime)."""
    if path.suffix == ".onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
    images = _example(metadata, batch=8, seed=2)
    with torch.no_grad():
        expected = reference(images)
    error = float((run_exported(path, images) - expected).abs().max())
    if not error <= TOLERANCE:
        raise ExportError(f"{path}: the exported model differs from the checkpoint by {error:.2e}")
    return error


def export(
    checkpoint: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    input_dtype: str = "float32",
    opset: int = MIN_OPSET,
    check: bool = True,
) -> Path:
    """Export ``checkpoint`` (a file, or ``best``/``last``) to ``out`` (default: beside the checkpoint,
    ``<name>.onnx`` or ``<name>.pt2``); returns the path written."""
    if fmt == "torchscript":
        raise ExportError(
            "TorchScript is deprecated in torch; export --format pt2 (torch.export) or onnx instead"
        )
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path = resolve_checkpoint(checkpoint)
    classifier, model, metadata = _load(path, input_dtype)
    target = Path(out) if out is not None else path.with_name(path.stem + SUFFIXES[fmt])
    if target.suffix != SUFFIXES[fmt]:
        raise ExportError(f"{target}: a {fmt} file's name must end in {SUFFIXES[fmt]}")
    data = to_onnx(model, metadata, opset) if fmt == "onnx" else to_pt2(model, metadata)
    with atomic_write(target, "wb") as handle:
        handle.write(data)
    if check:

        def reference(images: Tensor) -> Tensor:  # the checkpoint's own predict_step
            pixels = images.float() / 255.0 if model.uint8 else images
            return classifier.predict_step(model.tensor_steps(pixels), 0)

        error = check_export(target, reference, metadata)
        note = "not checked (onnxruntime not installed)" if error is None else f"max difference {error:.1e}"
        print(f"Checked {target} against the checkpoint: {note}", file=sys.stderr)
    return target
