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
from smile.metrics import accuracy, attribute_stat_scores, confusion_counts
from smile.models import build_network


class AttributeClassifier(pl.LightningModule):
    """Predict CelebA attributes with one logit each.

    Args:
        attributes: the attribute names, in head order (set from ``data.attributes`` by the CLI).
        net: the network's name in :data:`smile.models.NETWORKS`.
        net_kwargs: extra arguments of the network.
        lr: Adam's learning rate.
        weight_decay: Adam's L2 penalty.
    """

    def __init__(
        self,
        attributes: Sequence[str] = ("Smiling",),
        net: str = "original",
        net_kwargs: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
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
        # batch_size as a float: Lightning 2.6 averages the summed sizes over processes in the tensor's own
        # dtype, and an integer 19 / 2 == 9 would inflate the loss when processes hold unequal shares (DDP).
        self.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=float(len(images))
        )
        return loss

    def _log_epoch(self, stage: str) -> None:
        acc = accuracy(confusion_counts(self._stats(stage)))
        self.log(f"{stage}/acc", acc.mean())
        if stage != "train":
            for name, value in zip(self.attributes, acc):
                self.log(f"{stage}/{name}/acc", value)
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
