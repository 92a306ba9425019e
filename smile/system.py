"""The LightningModule: a network from :mod:`smile.models`, BCE loss, Adam, per-attribute metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from smile.data.attributes import resolve_attributes
from smile.errors import CheckpointError
from smile.metrics import (
    attribute_auroc,
    attribute_metrics,
    attribute_stat_scores,
    auroc_values,
    confusion_counts,
)
from smile.models import build_network


class AttributeClassifier(pl.LightningModule):
    """Predict CelebA attributes with one logit each.

    Args:
        attributes: the attribute names, in head order (set from ``data.attributes`` by the CLI).
        net: the network's name in :data:`smile.models.NETWORKS`.
        net_kwargs: extra arguments of the network.
        lr: Adam's learning rate.
        weight_decay: Adam's L2 penalty.
        channels_last: keep the network's weights (and so its activations) in channels-last memory
            format, which convolutions run faster in on GPUs (and with oneDNN on CPUs).
        compile: compile the network with ``torch.compile`` (the checkpoint's keys do not change).
    """

    def __init__(
        self,
        attributes: Sequence[str] = ("Smiling",),
        net: str = "original",
        net_kwargs: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.attributes = resolve_attributes(attributes)
        self.save_hyperparameters()
        self.hparams.attributes = self.attributes
        self.net = build_network(net, len(self.attributes), **(net_kwargs or {}))
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.train_stats = attribute_stat_scores(len(self.attributes))
        self.val_stats = attribute_stat_scores(len(self.attributes))
        self.test_stats = attribute_stat_scores(len(self.attributes))
        self.val_auroc = attribute_auroc(len(self.attributes))
        self.test_auroc = attribute_auroc(len(self.attributes))

    def configure_model(self) -> None:
        """``model.channels_last`` and ``model.compile``: applied before the model moves to its device."""
        if self.hparams.get("channels_last"):
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.get("compile") and getattr(self.net, "_compiled_call_impl", None) is None:
            self.net.compile()

    def forward(self, images: Tensor) -> Tensor:
        """Logits, ``(batch, num_attributes)``."""
        return self.net(images)

    def _stats(self, stage: str) -> Metric:
        return getattr(self, f"{stage}_stats")

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        images, targets = batch
        logits = self(images)
        loss = self.loss_fn(logits, targets)
        probs, labels = logits.detach().sigmoid(), targets.int()
        if len(self.attributes) == 1:  # binary metrics take (batch,) tensors
            probs, labels = probs[:, 0], labels[:, 0]
        self._stats(stage).update(probs, labels)
        if stage != "train":
            getattr(self, f"{stage}_auroc").update(probs, labels)
        # batch_size as a float: Lightning 2.6 averages the summed sizes over processes in the tensor's own
        # dtype, and an integer 19 / 2 == 9 would inflate the loss when processes hold unequal shares (DDP).
        self.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=float(len(images))
        )
        return loss

    def _log_epoch(self, stage: str) -> None:
        """``{stage}/acc`` (the mean accuracy over attributes), ``{stage}/balanced_acc``, ``{stage}/f1``
        and (val, test) ``{stage}/auroc`` as means over attributes; per attribute (val, test) as
        ``{stage}/<name>/<metric>``."""
        counts = confusion_counts(self._stats(stage))
        values = attribute_metrics(counts)
        if stage != "train":
            values["auroc"] = auroc_values(getattr(self, f"{stage}_auroc"), counts)
            getattr(self, f"{stage}_auroc").reset()
        for metric, per_attribute in values.items():
            self.log(f"{stage}/{metric}", per_attribute.nanmean())
            if stage != "train":
                for name, value in zip(self.attributes, per_attribute):
                    self.log(f"{stage}/{name}/{metric}", value)
        self._stats(stage).reset()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Tensor | tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Probabilities, ``(batch, num_attributes)``."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).sigmoid()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = list(checkpoint.get("hyper_parameters", {}).get("attributes", []))
        if saved and saved != self.attributes:
            raise CheckpointError(
                f"The checkpoint was trained for attributes {saved}, but data.attributes asks for "
                f"{self.attributes}. Drop --data.attributes to use the checkpoint's own list, or train a "
                "model for these attributes."
            )
