"""``python -m smile``: LightningCLI's fit/validate/test/predict, plus the project's own commands.

A checkpoint given as ``--ckpt_path`` brings its run's settings along: the model's and the data's
hyper-parameters become the defaults (the command line still overrides them), and logs go to the
run folder the checkpoint came from. ``best``/``last`` name the newest run's checkpoints.
"""

from __future__ import annotations

import importlib
import json
import re
import signal
import sys

from jsonargparse import lazy_instance
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from smile import resume
from smile.callbacks import LastCheckpoint, PredictionWriter, SaveRunConfig
from smile.checkpoints import LOG_ROOT, load_checkpoint, resolve_checkpoint, run_folder
from smile.data.datamodule import CelebADataModule
from smile.errors import SmileError
from smile.photos import predict_shorthands
from smile.resume import ResumableTraining
from smile.system import AttributeClassifier

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
#: Further commands: name -> module whose ``main(argv) -> int`` runs it.
EXTRA_COMMANDS: dict[str, str] = {
    "download": "smile.download",
    "check-data": "smile.data.check",
    "report": "smile.evaluation.runner",
    "export": "smile.export",
    "serve": "smile.serve",
}


class SmileCLI(LightningCLI):
    """LightningCLI with the attribute list linked from the data to the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.attributes", "model.attributes", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.enable_version_counter": False,
                "trainer.logger": lazy_instance(TensorBoardLogger, save_dir=".", name=str(LOG_ROOT)),
            }
        )

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_default_arguments_to_parser(parser)
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test the best checkpoint (fit only).",
        )
        parser.add_argument(
            "--report",
            type=bool,
            default=True,
            help="After testing (test, or fit with --test_after_fit), write the evaluation report to the "
            "run folder's report/ (python -m smile report makes it on its own, with more options).",
        )

    def _run_subcommand(self, subcommand: str) -> None:
        super()._run_subcommand(subcommand)
        tested = subcommand == "test"
        if subcommand == "fit" and self.config.fit.test_after_fit and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best")
            tested = True
        if tested and self.config[subcommand].get("report", True) and not self.trainer.interrupted:
            from smile.evaluation.runner import report_after_test

            report_after_test(self.trainer, self.model, self.datamodule)

    def _parse_ckpt_path(self) -> None:
        """Checkpoint settings are applied by :func:`checkpoint_arguments` before parsing, so that the
        command line can override them."""


def _option(args: list[str], name: str) -> tuple[int, str] | None:
    """Index and value of the last ``--name value`` or ``--name=value`` in ``args``."""
    found = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            found = (i, args[i + 1])
        elif arg.startswith(name + "="):
            found = (i, arg.split("=", 1)[1])
    return found


def checkpoint_arguments(args: list[str]) -> list[str]:
    """Rewrite ``args`` so that ``--ckpt_path`` is a real file and its run's settings are the defaults."""
    if not args or args[0] not in LIGHTNING_COMMANDS:
        return args
    found = _option(args, "--ckpt_path")
    if found is None or found[1] in ("", "null", "None"):
        return args
    index, value = found
    path = resolve_checkpoint(value)
    if str(path) != value:
        print(f"Using checkpoint {path}", file=sys.stderr)
    checkpoint = load_checkpoint(path)
    internal = ("_instantiator", "_class_path")
    model = {k: v for k, v in checkpoint["hyper_parameters"].items() if k not in (*internal, "attributes")}
    data = {k: v for k, v in checkpoint.get("datamodule_hyper_parameters", {}).items() if k not in internal}
    defaults: dict = {"model": model, "data": data}
    run = run_folder(path)
    configs = []
    if run is not None:
        if args[0] == "fit" and (run.path / "config.yaml").is_file():
            configs += ["--config", str(run.path / "config.yaml")]
        defaults["trainer"] = {
            "logger": {
                "class_path": "pytorch_lightning.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(run.save_dir), "name": run.name, "version": run.version},
            }
        }
    configs += ["--config", json.dumps(defaults)]
    rest = (
        args[1 : index + 1] + [str(path)] + args[index + 2 :]
        if args[index] == "--ckpt_path"
        else (args[1:index] + [f"--ckpt_path={path}"] + args[index + 1 :])
    )
    return [args[0], *configs, *rest]


def run_lightning(args: list[str]) -> None:
    SmileCLI(
        AttributeClassifier,
        CelebADataModule,
        args=checkpoint_arguments(predict_shorthands(args)),
        trainer_defaults={"callbacks": [ResumableTraining(), PredictionWriter()]},
        save_config_callback=SaveRunConfig,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={"description": "Train and evaluate CelebA attribute classifiers."},
    )


def error_message(err: BaseException) -> str:
    """The message of ``err``; for an error re-raised from a data loader worker, the original one only
    (PyTorch puts the worker's whole traceback into the message)."""
    text = str(err)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last)
    return text


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m smile``."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in EXTRA_COMMANDS:
            return int(importlib.import_module(EXTRA_COMMANDS[args[0]]).main(args[1:]) or 0)
        run_lightning(args)
    except SmileError as err:
        print(f"error: {error_message(err)}", file=sys.stderr)
        return 2
    except SIGTERMException:
        signum = resume.stopped_by or signal.SIGTERM
        print(
            f"Stopped by {signal.Signals(signum).name}. Continue with: python -m smile fit --ckpt_path last",
            file=sys.stderr,
        )
        return 128 + int(signum)
    return 0
