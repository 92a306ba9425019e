"""The LightningModule: a network from :mod:`smile.models`, BCE loss, the recipe's optimiser and schedule,
per-attribute metrics (:mod:`smile.evaluation.metrics`) and per-attribute decision thresholds.

The recipe options (optimizer, scheduler, label smoothing, weight averaging: :mod:`smile.training.recipe`;
test-time views: :mod:`smile.models.views`) default to the original notebook's recipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import Metric

from smile.console import say
from smile.data.celeba import CELEBA_ATTRIBUTES, resolve_attributes
from smile.devices import slow_precision_message
from smile.errors import CheckpointError, OptionError
from smile.evaluation.metrics import (
    EpochOutputs,
    attribute_auroc,
    attribute_metrics,
    attribute_stat_scores,
    auroc_values,
    confusion_counts,
    mean_rates,
)
from smile.evaluation.thresholds import CRITERIA, DEFAULT_THRESHOLD, tune_thresholds
from smile.models import NetworkName, build_network
from smile.models.views import check_shifts, view_averaged
from smile.trained.checkpoints import checkpoint_settings, migrate
from smile.training.recipe import (
    build_optimizer,
    build_scheduler,
    ema_model,
    positive_weights,
    smooth_targets,
)

if TYPE_CHECKING:
    from smile.data.datamodule import CelebADataModule


def attribute_names(names: Sequence[str] | str) -> list[str]:
    """The model's attributes: CelebA's (``all`` means the 40; names that are all CelebA's are checked
    and spelt as CelebA spells them), or any other names, for a model trained on your own labelled photos
    (the data module checks those against its labels)."""
    listed = [names] if isinstance(names, str) else list(names)
    lowered = {name.lower() for name in CELEBA_ATTRIBUTES} | {"all"}
    if not listed or all(str(name).lower() in lowered for name in listed):
        return resolve_attributes(listed)
    if len(set(listed)) != len(listed) or not all(isinstance(name, str) and name for name in listed):
        raise OptionError(f"model.attributes {listed}: give distinct, non-empty names")
    return listed


class AttributeClassifier(pl.LightningModule):
    """Predict CelebA attributes with one logit each.

    Args:
        attributes: the attribute names, in head order (set from ``data.attributes`` by the CLI).
        net: the network: ``original`` (the notebook's CNN), ``original_bn`` (with batch normalisation),
            ``resnet`` (a small ResNet), ``mini_xception`` (fer's emotion network) or ``ensemble`` (the
            mean logit of several, built by ``smile ensemble``).
        net_kwargs: extra arguments of the network (``original``, ``original_bn``: dropout; ``resnet``: widths,
            blocks, dropout, head, head_channels, grid; ``mini_xception``: pretrained, loaded when a fit sets up;
            ``ensemble``: members).
        lr: the (peak) learning rate.
        weight_decay: Adam's L2 penalty on all parameters; AdamW's/SGD's decay on weights only.
        optimizer: ``adam`` (the original), ``adamw`` or ``sgd``.
        scheduler: ``none`` (constant), ``cosine`` or ``onecycle``, stepped every batch.
        warmup_epochs: linear warm-up of the schedule, in epochs (fractions allowed).
        label_smoothing: train on targets ``t * (1 - eps) + eps / 2``.
        ema_decay: keep an exponential moving average of the weights with this decay per step, and
            validate, test, predict and checkpoint-select with it (``null``: none).
        tta: in validation, test and predict, average the logits of each image and its mirror image.
        tta_shifts: in validation, test and predict, also average the logits of the image shifted
            vertically by each of these fractions of its height (edge rows repeated; with ``tta``, each
            shift with its mirror too): the vertical play of the training windows, seen at test time.
            ``[-0.1, -0.05, 0.05, 0.1]`` with ``tta`` (10 passes) gained 0.17 points of mean validation
            accuracy over 40 attributes against the mirror alone (README, "All 40 attributes").
        channels_last: keep the network's weights and inputs in channels-last memory format, which
            convolutions run faster in on GPUs and with oneDNN on CPUs.
        compile: compile the network with ``torch.compile`` (the checkpoint's keys do not change).
        threshold_criterion: after each validation, set each attribute's decision threshold to the one
            that maximises this on the validation split (``acc``, ``balanced_acc`` or ``f1``; attributes
            with fewer than 20 validation images of a class keep 0.5). The thresholds are saved in every
            checkpoint with the weights they were tuned for, and test, predict, the Python API and export
            decide with them. ``null``: 0.5 for every attribute.
        positive_weight: weigh each attribute's positive images in the loss by ``negatives / positives``
            of the training split (``balanced``) or its square root (``sqrt``), so that rare attributes
            are not learnt as "always absent"; ``null``: plain BCE.
        init: start a fit from a trained model: a shipped model's name (``smiling``, ``attributes``) or a
            checkpoint. Its weights replace this network's where they fit: all of them when it predicts
            the same attributes with the same network (its decision thresholds too, tuned again on the new
            validation split with ``threshold_criterion``), all but the head otherwise.
    """

    def __init__(
        self,
        attributes: Sequence[str] = ("Smiling",),
        net: NetworkName = "original",
        net_kwargs: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        scheduler: Literal["none", "cosine", "onecycle"] = "none",
        warmup_epochs: float = 0.0,
        label_smoothing: float = 0.0,
        ema_decay: float | None = None,
        tta: bool = False,
        tta_shifts: Sequence[float] = (),
        channels_last: bool = False,
        compile: bool = False,
        threshold_criterion: Literal["acc", "balanced_acc", "f1"] | None = None,
        positive_weight: Literal["balanced", "sqrt"] | None = None,
        init: str | None = None,
    ) -> None:
        super().__init__()
        # The CLI links the data module's resolved list here; names are checked again for Python callers
        attributes = self.attributes = attribute_names(attributes)
        check_shifts(tta_shifts)
        self.save_hyperparameters()
        self.net = build_network(net, len(self.attributes), **(net_kwargs or {}))
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.ema = ema_model(self.net, ema_decay) if ema_decay is not None else None
        #: BCE's weight of positive images in training (``positive_weight``); set in ``setup``, not saved.
        self.register_buffer("positive_weights", None, persistent=False)
        self.train_stats = attribute_stat_scores(len(self.attributes))
        self.val_stats = attribute_stat_scores(len(self.attributes))
        self.test_stats = attribute_stat_scores(len(self.attributes))
        self.val_auroc = attribute_auroc(len(self.attributes))
        self.test_auroc = attribute_auroc(len(self.attributes))
        if threshold_criterion is not None and threshold_criterion not in CRITERIA:
            raise OptionError(
                f"model.threshold_criterion is {threshold_criterion!r}; choose one of {', '.join(CRITERIA)} "
                "or null"
            )
        #: The decision threshold of each attribute: an image is predicted positive when its probability
        #: is greater. A buffer, so that every checkpoint holds the thresholds of its own weights.
        self.register_buffer("thresholds", torch.full((len(self.attributes),), DEFAULT_THRESHOLD))
        self.val_outputs = EpochOutputs()
        #: The last test's probabilities and labels per batch, in loader order (the report reuses them).
        self.test_outputs: list[tuple[Tensor, Tensor]] = []

    def configure_model(self) -> None:
        """``model.channels_last`` and ``model.compile``: applied before the model moves to its device."""
        if self.hparams.get("channels_last"):
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.get("compile") and getattr(self.net, "_compiled_call_impl", None) is None:
            self.net.compile()

    def setup(self, stage: str) -> None:
        # Before a resumed fit restores its checkpoint, which then replaces these weights; test and predict
        # build the network from the checkpoint alone, so they never need the pretrained file or model.
        if stage == "fit" and hasattr(self.net, "load_pretrained"):
            self.net.load_pretrained()
        if stage == "fit" and self.hparams.get("init"):
            say(self.start_from(self.hparams.init))
        if stage == "fit" and self.ema is not None:
            self.ema.module.load_state_dict(self.net.state_dict())
        size = getattr(getattr(self.trainer, "datamodule", None), "hparams", {}).get("image_size")
        if size:  # the model summary's FLOPs and sizes come from a forward pass of this
            self.example_input_array = torch.zeros(1, 3, int(size), int(size))
        scheme = self.hparams.get("positive_weight")
        if stage != "fit" or scheme is None:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "positive_rates"):
            raise OptionError(
                "model.positive_weight needs the training split's label counts: fit with a "
                "CelebADataModule (python -m smile fit), or leave it null"
            )
        rates = torch.as_tensor(datamodule.positive_rates("train", self.attributes), dtype=torch.float32)
        self.positive_weights = positive_weights(rates, scheme).to(self.device)

    def start_from(self, source: str) -> str:
        """Load the weights of the trained model ``source`` where they fit (``model.init``); returns what
        was taken. Raises an :class:`OptionError` when its network is another than this one."""
        from smile.trained.checkpoints import evaluation_weights
        from smile.trained.inference import checkpoint_of

        checkpoint = checkpoint_of(source)
        weights, hyper = evaluation_weights(checkpoint), checkpoint["hyper_parameters"]
        own = self.state_dict()
        same_attributes = list(hyper.get("attributes", [])) == self.attributes
        taken = {
            key: value
            for key, value in weights.items()
            if key in own and own[key].shape == value.shape and (key != "thresholds" or same_attributes)
        }
        body = [key for key in own if key.startswith("net.") and not key.startswith("net.head.")]
        if hyper.get("net") != self.hparams.net or any(key not in taken for key in body):
            raise OptionError(
                f"model.init {source}: its network ({hyper.get('net')}, {hyper.get('net_kwargs')}) is not "
                f"this run's ({self.hparams.net}, {self.hparams.net_kwargs}); start from a model of the same "
                "network (smiling: --config smile; attributes: --config attributes)"
            )
        self.load_state_dict(taken, strict=False)
        if same_attributes:
            return f"model.init: started from {source}, all its weights and its decision thresholds"
        return (
            f"model.init: started from {source}, all but the head: it predicts {list(hyper.get('attributes', []))}, "
            f"this model {self.attributes}"
        )

    def on_fit_start(self) -> None:
        message = slow_precision_message(self.trainer.precision, self.device.type)
        if message:
            rank_zero_warn(message)

    @property
    def evaluation_net(self) -> torch.nn.Module:
        """The network that validation, test and predict run: the averaged weights when ``ema_decay`` keeps them."""
        return self.ema.module if self.ema is not None else self.net

    def forward(self, images: Tensor) -> Tensor:
        """Logits, ``(batch, num_attributes)``: of the trained network in training, else of the averaged
        weights (``ema_decay``) and averaged over test-time views (``tta``, ``tta_shifts``) when these are on."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.training:
            return self.net(images)
        return view_averaged(self.evaluation_net, images, *self.test_time_views)

    @property
    def test_time_views(self) -> tuple[bool, tuple[float, ...]]:
        """``(mirror, shifts)`` of evaluation (``tta``, ``tta_shifts``): :func:`smile.models.views.view_averaged`'s
        settings, as :class:`~smile.trained.description.ModelDescription` records them."""
        return bool(self.hparams.get("tta")), tuple(self.hparams.get("tta_shifts") or ())

    def _stats(self, stage: str) -> Metric:
        return getattr(self, f"{stage}_stats")

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        images, targets = batch
        logits = self(images)
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        weights = self.positive_weights if stage == "train" else None  # val and test losses: plain BCE
        loss = F.binary_cross_entropy_with_logits(
            logits, smooth_targets(targets, smoothing), pos_weight=weights
        )
        probs, labels = logits.detach().sigmoid(), targets.int()
        if stage == "test":
            self.test_outputs.append((probs.float().cpu(), labels.cpu()))
        if stage == "val" and self.hparams.get("threshold_criterion"):
            self.val_outputs.update(probs, labels)
        # training and validation count at 0.5 (a fixed yardstick across epochs); test at the model's thresholds
        decisions = (probs > self.thresholds).int() if stage == "test" else probs
        if len(self.attributes) == 1:  # binary metrics take (batch,) tensors
            probs, labels, decisions = probs[:, 0], labels[:, 0], decisions[:, 0]
        self._stats(stage).update(decisions, labels)
        if stage != "train":
            getattr(self, f"{stage}_auroc").update(probs, labels)
        # batch_size as a float: Lightning 2.6 averages the summed sizes over processes in the tensor's own
        # dtype, and an integer 19 / 2 == 9 would inflate the loss when processes hold unequal shares (DDP).
        self.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=float(len(images))
        )
        if stage == "train":  # the progress bar's running loss (the logged curve is per epoch, above)
            self.log("loss", loss, on_step=True, prog_bar=True, logger=False, batch_size=float(len(images)))
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
        if stage in ("train", "val"):  # the progress bar's accuracy of the last epoch and validation
            self.log(f"{stage}_acc", values["acc"].nanmean(), prog_bar=True, logger=False, sync_dist=True)
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
        criterion = self.hparams.get("threshold_criterion")
        if criterion:
            probs, labels = self.val_outputs.compute()
            self.val_outputs.reset()
            if not self.trainer.sanity_checking:  # a few batches: they would overwrite a resumed model's
                self.set_thresholds(probs, labels, criterion)

    def set_thresholds(self, probs: Tensor, labels: Tensor, criterion: str) -> None:
        """Set :attr:`thresholds` to those that maximise ``criterion`` on these validation outputs, and log
        the validation figures at them (``val/acc_tuned``, ``val/balanced_acc_tuned``: tuned on the same
        images, so optimistic; test tells)."""
        probs, labels = probs.cpu().numpy(), labels.cpu().numpy()
        chosen, _ = tune_thresholds(probs, labels, criterion)
        self.thresholds.copy_(torch.as_tensor(chosen, dtype=self.thresholds.dtype))
        means = mean_rates(probs, labels, chosen)
        self.log("val/acc_tuned", means["mean_acc"])
        self.log("val/balanced_acc_tuned", means["mean_balanced_acc"])

    def on_test_epoch_start(self) -> None:
        self.test_outputs = []

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Tensor | tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Probabilities, ``(batch, num_attributes)``."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).sigmoid()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = build_optimizer(self.net, hp.optimizer, hp.lr, hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        scheduler = build_scheduler(optimizer, hp.scheduler, total, round(hp.warmup_epochs * total / epochs))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> AttributeClassifier:
        """The system a loaded checkpoint (:func:`smile.trained.checkpoints.load_checkpoint`) holds, with
        its weights and thresholds, in eval mode, on the CPU: for the tools that evaluate a checkpoint
        without a Trainer (``smile report``, ``smile thresholds``, the benchmarks)."""
        model = cls(**checkpoint_settings(checkpoint).model)
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        migrate(checkpoint)  # a file of an older version, as the Trainer loaded it
        saved = list(checkpoint.get("hyper_parameters", {}).get("attributes", []))
        if saved and saved != self.attributes:
            raise CheckpointError(
                f"The checkpoint was trained for attributes {saved}, but data.attributes asks for "
                f"{self.attributes}. Drop --data.attributes to use the checkpoint's own list, or train a "
                "model for these attributes."
            )


def restore(
    source: str | Path,
    stage: Literal["validate", "test"],
    device: str = "auto",
    **data_overrides: Any,
) -> tuple[AttributeClassifier, CelebADataModule, dict[str, Any], Path]:
    """A trained model's system (on ``device``: ``auto`` is a GPU when there is one) and its run's data
    module set up for ``stage``, with the loaded checkpoint and its file: ``source`` is anything
    :func:`smile.trained.sources.resolve` takes that has training settings. ``data_overrides`` that are
    not ``None`` replace the run's data settings (``root``, ``batch_size``, ``cache_dir``...)."""
    from smile.data.datamodule import CelebADataModule
    from smile.data.layouts import STAGE_SPLITS
    from smile.trained.checkpoints import load_checkpoint
    from smile.trained.sources import resolve

    path = resolve(source).checkpoint_path()
    checkpoint = load_checkpoint(path)
    settings = checkpoint_settings(checkpoint)
    data = dict(settings.data)
    if not data:
        raise CheckpointError(f"{path} holds no data settings (datamodule_hyper_parameters); train it with the CLI")
    data["attributes"] = settings.model["attributes"]  # the model's list (the same, for CLI-trained runs)
    data["synthetic_images"] = None  # evaluating never generates data at the run's (or a given) root
    data.update({key: value for key, value in data_overrides.items() if value is not None})
    model = AttributeClassifier.from_checkpoint(checkpoint)
    model.to(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    datamodule = CelebADataModule(**data)
    datamodule.prepare_splits(STAGE_SPLITS[stage])
    datamodule.setup(stage)
    return model, datamodule, checkpoint, path
