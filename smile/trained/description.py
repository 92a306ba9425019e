"""What a trained model is, in one typed record: :class:`ModelDescription`.

Every form a model takes describes itself with it: a checkpoint and a shipped model derive it from the
hyper-parameters they were trained with (:meth:`ModelDescription.from_checkpoint`, so it cannot disagree
with them); an exported ``.onnx`` or ``.pt2`` file carries it as JSON (:meth:`~ModelDescription.to_json`,
read back by :meth:`~ModelDescription.from_json`); the model card prints it. Each default is written
here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from smile.data.celeba import CROP_SIZE, IMAGE_SIZE
from smile.errors import CheckpointError

#: The version of :meth:`ModelDescription.to_json`'s layout (1: files exported before the description
#: had a class of its own; they read the same, less the views).
FORMAT_VERSION = 2
#: The threshold of an attribute whose model did not choose one.
DEFAULT_THRESHOLD = 0.5
SYNTHETIC, PHOTOGRAPHS = "synthetic faces", "photographs of faces"


@dataclass(frozen=True)
class ModelDescription:
    """A trained model: what it predicts, what it takes in, how it decides, and where it came from.

    ``attributes`` in output order; ``thresholds`` one per attribute (an attribute is predicted present
    when its probability is greater); ``image_size`` the network's input side; ``crop_size`` the side of
    the window of the 178x218 aligned face that is resized to it; ``mirror`` and ``shifts`` the test-time
    views averaged (:mod:`smile.models.views`); ``channels`` and ``input_dtype`` the input's pixels
    (``float32`` in [0, 1], or ``uint8`` 0-255 for a file exported so); ``synthetic`` whether it knows only
    drawn faces (``smile synthetic``, the demo); ``network`` the registry name and keyword arguments
    that rebuild it; ``provenance`` the file, its hash, epoch and producer.
    """

    attributes: tuple[str, ...]
    thresholds: tuple[float, ...] = ()
    threshold_criterion: str | None = None
    image_size: int = IMAGE_SIZE
    crop_size: int = CROP_SIZE
    mirror: bool = False
    shifts: tuple[float, ...] = ()
    channels: str = "RGB"
    input_dtype: str = "float32"
    synthetic: bool = False
    network: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        attributes = tuple(self.attributes)
        thresholds = tuple(float(t) for t in self.thresholds) or (DEFAULT_THRESHOLD,) * len(attributes)
        if not attributes or len(thresholds) != len(attributes):
            raise CheckpointError(
                f"a model description needs attributes and one threshold each, got {len(attributes)} "
                f"attributes and {len(thresholds)} thresholds"
            )
        object.__setattr__(self, "attributes", attributes)
        object.__setattr__(self, "thresholds", thresholds)
        object.__setattr__(self, "shifts", tuple(float(s) for s in self.shifts))

    @property
    def input_shape(self) -> list[Any]:
        """The network's input, ``["batch", 3, S, S]``."""
        return ["batch", len(self.channels), self.image_size, self.image_size]

    @property
    def trained_on(self) -> str:
        return SYNTHETIC if self.synthetic else PHOTOGRAPHS

    def threshold_map(self) -> dict[str, float]:
        """``{attribute: threshold}``."""
        return dict(zip(self.attributes, self.thresholds))

    def with_changes(self, **changes: Any) -> ModelDescription:
        return replace(self, **changes)

    # --- JSON: the metadata of exported files ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the layout exported files carry under the key ``smile``)."""
        return {
            "format_version": FORMAT_VERSION,
            "attributes": list(self.attributes),
            "thresholds": self.threshold_map(),
            "threshold_criterion": self.threshold_criterion,
            "input": {
                "shape": self.input_shape,
                "crop_size": self.crop_size,
                "layout": "NCHW",
                "channels": self.channels,
                "dtype": self.input_dtype,
                "value_range": [0, 255] if self.input_dtype == "uint8" else [0.0, 1.0],
            },
            "views": {"mirror": self.mirror, "shifts": list(self.shifts)},
            "network": dict(self.network),
            "trained_on": self.trained_on,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "the model's metadata") -> ModelDescription:
        """The description :meth:`to_json` wrote (keys other than its own are ignored)."""
        defaults = {item.name: item.default for item in fields(cls)}
        try:
            attributes = list(data["attributes"])
            given = data.get("input") or {}
            saved = data.get("thresholds") or {}
            views = data.get("views") or {}
            return cls(
                attributes=tuple(attributes),
                thresholds=tuple(float(saved.get(name, DEFAULT_THRESHOLD)) for name in attributes),
                threshold_criterion=data.get("threshold_criterion"),
                image_size=int(given.get("shape", [defaults["image_size"]])[-1]),
                crop_size=int(given.get("crop_size", defaults["crop_size"])),
                mirror=bool(views.get("mirror", defaults["mirror"])),
                shifts=tuple(views.get("shifts", defaults["shifts"])),
                channels=str(given.get("channels", defaults["channels"])),
                input_dtype=str(given.get("dtype", defaults["input_dtype"])),
                synthetic=data.get("trained_on") == SYNTHETIC,
                network=dict(data.get("network") or {}),
                provenance=dict(data.get("provenance") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CheckpointError(f"{where}: not a smile model description ({err!r})") from None

    # --- from training settings -------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        model: Mapping[str, Any],
        data: Mapping[str, Any],
        thresholds: Sequence[float] = (),
        synthetic: bool = False,
        provenance: Mapping[str, Any] | None = None,
    ) -> ModelDescription:
        """The description of a model trained with these hyper-parameters (``model``: the system's,
        ``data``: the data module's; a checkpoint trained without the data module has none)."""
        defaults = {item.name: item.default for item in fields(cls)}
        return cls(
            attributes=tuple(model["attributes"]),
            thresholds=tuple(thresholds),
            threshold_criterion=model.get("threshold_criterion"),
            image_size=int(data.get("image_size") or defaults["image_size"]),
            crop_size=int(data.get("crop_size") or defaults["crop_size"]),
            mirror=bool(model.get("tta")),
            shifts=tuple(model.get("tta_shifts") or ()),
            synthetic=synthetic,
            network={"net": model.get("net"), "net_kwargs": dict(model.get("net_kwargs") or {})},
            provenance=dict(provenance or {}),
        )
