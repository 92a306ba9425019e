"""``smile`` (or ``python -m smile``): one command tree over LightningCLI's fit/validate/test/predict and
the project's own commands, all listed in :data:`COMMANDS`.

A checkpoint given as ``--ckpt_path`` brings its run's settings along: the model's and the data's
hyper-parameters become the defaults (the command line still overrides them), and logs go to the
run folder the checkpoint came from. ``best``/``last`` name the newest run's checkpoints.
"""

from __future__ import annotations

import difflib
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

from smile import __version__
from smile.console import PlainHelpFormatter, quiet_upstream
from smile.data.datamodule import CelebADataModule
from smile.devices import check_devices, cpu_precision
from smile.distributed import end_process_group, say, say_error
from smile.errors import SmileError
from smile.photos.dataset import predict_shorthands
from smile.system import AttributeClassifier
from smile.training import resume
from smile.training.callbacks import LastCheckpoint, PredictionWriter, SaveRunConfig
from smile.training.checkpoints import (
    LOG_ROOT,
    checkpoint_settings,
    load_checkpoint,
    resolve_checkpoint,
    run_folder,
)
from smile.training.resume import ResumableTraining

PROG = "smile"
#: Marks a command that LightningCLI runs (a Trainer method) in :data:`COMMANDS`.
LIGHTNING = "lightning"
#: Every command: name -> (the module whose ``main(argv) -> int`` runs it, or LIGHTNING; its one-line help).
#: A new command is one line here; ``smile --help`` lists them in this order.
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": (LIGHTNING, "Train a model (try: smile fit --config configs/demo.yaml)"),
    "validate": (LIGHTNING, "Evaluate a checkpoint on the validation split"),
    "test": (LIGHTNING, "Evaluate a checkpoint on the test split and write its report"),
    "predict": (LIGHTNING, "Write predictions.csv: the test split, or your photos (--data.predict_path)"),
    "report": ("smile.evaluation.runner", "Write the evaluation report of a checkpoint"),
    "thresholds": ("smile.evaluation.thresholds", "Choose a checkpoint's decision thresholds on validation"),
    "ensemble": ("smile.ensemble", "Join trained checkpoints into one that predicts their mean logit"),
    "export": ("smile.export", "Export a checkpoint to ONNX or torch.export (.pt2)"),
    "serve": ("smile.serve", "Serve a checkpoint over HTTP, with a web page to try it (127.0.0.1:8000)"),
    "download": ("smile.download", "Download CelebA (Google Drive, Hugging Face or Kaggle)"),
    "check-data": ("smile.data.check", "Check a CelebA copy: every annotation row and every image"),
}
LIGHTNING_COMMANDS = tuple(name for name, (module, _) in COMMANDS.items() if module == LIGHTNING)


def usage() -> str:
    """The text of ``smile --help``: every command with its line."""
    width = max(len(name) for name in COMMANDS) + 2
    lines = [
        f"usage: {PROG} <command> [options]",
        "",
        "Face-attribute classifiers on CelebA with PyTorch Lightning.",
        "",
        "commands:",
        *(f"  {name:<{width}}{line}" for name, (_, line) in COMMANDS.items()),
        "",
        f"Run '{PROG} <command> --help' for a command's options ({PROG} --version: the version).",
    ]
    return "\n".join(lines)


def unknown_command(name: str) -> str:
    """The error for a command that does not exist, with the nearest one when there is one."""
    close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown command '{name}': {hint}{PROG} --help lists the commands ({', '.join(COMMANDS)})"


class SmileArgumentParser(LightningArgumentParser):
    """Lightning's parser with errors a user reads at a glance: a one-line usage instead of every option,
    and the accepted values of a choice spelled out."""

    def print_usage(self, file=None) -> None:
        command = self.prog.replace(" [options]", "")
        print(f"usage: {command} [options]", file=file)

    def error(self, message: str, ex: Exception | None = None):
        message = re.sub(
            r"Expected a (?:typing\.)?Literal\[(.*?)\]\. Got value: (.*)",
            lambda m: f"expected one of: {m.group(1).replace(chr(39), '')}; got {m.group(2)}",
            message,
        )
        unknown = re.match(r"unrecognized arguments: (--[\w.]+)", message)
        close = unknown and difflib.get_close_matches(unknown.group(1), list(self._option_string_actions), 1)
        if close:
            message += f" (did you mean {close[0]}?)"
        return super().error(message, ex)


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

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str] | None) -> None:
        """Parse ``args``: the command line as :func:`main` rewrote it (with a checkpoint's settings), so
        Lightning's warning against passing ``args`` beside ``sys.argv`` does not apply here; then check
        the devices and the precision before anything starts."""
        self.config = parser.parse_args(args)
        subcommand = self.config.get("subcommand")
        trainer = (self.config[subcommand] if subcommand else self.config).trainer
        check_devices(trainer.accelerator, trainer.devices)
        trainer.precision, change = cpu_precision(trainer.accelerator, trainer.precision)
        if change:
            say(change)

    def _run_subcommand(self, subcommand: str) -> None:
        super()._run_subcommand(subcommand)
        tested = subcommand == "test"
        if subcommand == "fit" and self.config.fit.test_after_fit and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=self._best_checkpoint())
            tested = True
        if tested and self.config[subcommand].get("report", True) and not self.trainer.interrupted:
            if self.trainer.fast_dev_run:
                print("fast_dev_run: no report (it writes no run folder)", file=sys.stderr)
                return
            from smile.evaluation.runner import report_after_test

            report_after_test(self.trainer, self.model, self.datamodule)

    def _best_checkpoint(self) -> str | None:
        """The file the ``checkpoint`` callback chose as best, named explicitly (``"best"`` would make
        Lightning guess among this and ``last_checkpoint``); ``None`` (the weights as they are) when it
        wrote none, as under ``fast_dev_run``."""
        best = next((cb for cb in self.trainer.checkpoint_callbacks if type(cb) is ModelCheckpoint), None)
        if best is not None and best.best_model_path:
            return best.best_model_path
        reason = "fast_dev_run writes no checkpoint" if self.trainer.fast_dev_run else "no best checkpoint"
        print(f"test_after_fit: {reason}; testing the weights as they are", file=sys.stderr)
        return None

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
        say(f"Using checkpoint {path}")
    settings = checkpoint_settings(load_checkpoint(path))
    model = {key: value for key, value in settings.model.items() if key != "attributes"}  # the data's
    defaults: dict = {"model": model, "data": settings.data}
    run = run_folder(path)
    configs = []
    if run is not None:
        if args[0] == "fit" and (run.path / "config.yaml").is_file():
            configs += ["--config", str(run.path / "config.yaml")]
        # validate logs the run's own tags (val/acc at the last step): into a folder of its own inside the
        # run, so that the training curves that TensorBoard and the benchmarks read stay the fit's
        version = f"{run.version}/validate" if args[0] == "validate" else run.version
        defaults["trainer"] = {
            "logger": {
                "class_path": "pytorch_lightning.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(run.save_dir), "name": run.name, "version": version},
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
    """Run a LightningCLI command. An unset ``seed_everything`` is 0 for fit (the seed the data order
    falls back to anyway) and no seeding at all for the evaluation commands, which draw nothing random."""
    plain = {"formatter_class": PlainHelpFormatter}
    commands = {
        name: {"description": line, **plain}
        for name, (module, line) in COMMANDS.items()
        if module == LIGHTNING
    }
    SmileCLI(
        AttributeClassifier,
        CelebADataModule,
        args=checkpoint_arguments(predict_shorthands(args)),
        trainer_defaults={"callbacks": [ResumableTraining(), PredictionWriter()]},
        save_config_callback=SaveRunConfig,
        parser_class=SmileArgumentParser,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        seed_everything_default=0 if args and args[0] == "fit" else False,
        parser_kwargs={
            "prog": PROG,
            "description": "Train and evaluate CelebA attribute classifiers.",
            **plain,
            **commands,
        },
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
    """Entry point of ``smile`` and ``python -m smile``: returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    quiet_upstream()
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    if not args[0].startswith("-") and args[0] not in COMMANDS:
        print(f"error: {unknown_command(args[0])}", file=sys.stderr)
        return 2
    try:
        module = COMMANDS.get(args[0], (LIGHTNING, ""))[0]
        if module != LIGHTNING:
            return int(importlib.import_module(module).main(args[1:]) or 0)
        run_lightning(args)
    except SmileError as err:
        say_error(error_message(err))
        return 2
    except SIGTERMException:
        signum = resume.stopped_by or signal.SIGTERM
        say(f"Stopped by {signal.Signals(signum).name}. Continue with: python -m smile fit --ckpt_path last")
        return 128 + int(signum)
    finally:
        end_process_group()
    return 0
