"""``smile fit``, ``validate``, ``test`` and ``predict`` (on a CelebA split): LightningCLI over
:class:`~smile.system.AttributeClassifier` and :class:`~smile.data.datamodule.CelebADataModule`.

Only LightningCLI's public API is used: ``run=False`` with explicit Trainer calls, its hooks, and
jsonargparse's ``set_defaults``. A checkpoint given as ``--ckpt_path`` brings its run's settings along:
they become the parser's defaults, so the command line still overrides them; the model's and the data's
hyper-parameters, the run folder to log into, and for a resumed fit the run's whole ``config.yaml``.
``best``/``last`` name the newest run's checkpoints.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import DefaultHelpFormatter, Namespace, lazy_instance
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import TensorBoardLogger

from smile.commands import did_you_mean, first_unknown_option
from smile.console import plain, quiet_resume, quiet_upstream, say
from smile.data.datamodule import CelebADataModule
from smile.devices import check_devices, cpu_precision
from smile.system import AttributeClassifier
from smile.trained.checkpoints import checkpoint_settings, load_checkpoint, run_folder
from smile.trained.sources import LOG_ROOT, required, resolve
from smile.training.callbacks import LastCheckpoint, PredictionWriter, SaveRunConfig
from smile.training.resume import ResumableTraining

TENSORBOARD = "pytorch_lightning.loggers.TensorBoardLogger"


class PlainHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with docstring markup removed from option and group texts."""

    def _expand_help(self, action) -> str:
        return plain(super()._expand_help(action))

    def start_section(self, heading: str | None) -> None:
        super().start_section(plain(heading) if heading else heading)

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))


class SmileArgumentParser(LightningArgumentParser):
    """Lightning's parser with errors a user reads at a glance: a one-line usage instead of every option,
    the accepted values of a choice spelled out, and for an unknown option the one meant (a misspelling,
    hyphens for underscores, or the option of another form of the command: :attr:`other_options`).
    Options must be spelled out (``allow_abbrev=False``: ``--trainer.max_epoch`` is refused)."""

    #: Options of the command's other form (``smile predict PHOTO``'s), for the did-you-mean only.
    other_options: tuple[str, ...] = ()

    def print_usage(self, file=None) -> None:
        command = self.prog.replace(" [options]", "")
        print(f"usage: {command} [options]", file=file)

    def error(self, message: str, ex: Exception | None = None):
        message = re.sub(
            r"Expected a (?:typing\.)?Literal\[(.*?)\]\. Got value: (.*)",
            lambda m: f"expected one of: {m.group(1).replace(chr(39), '')}; got {m.group(2)}",
            message,
        )
        unknown = first_unknown_option(message)
        close = unknown and did_you_mean(unknown, [*self._option_string_actions, *self.other_options])
        if close:
            message += f" (did you mean {close}?)"
        return super().error(message, ex)


def saved_config(parser: LightningArgumentParser, path: Path) -> dict[str, Any]:
    """A run's saved ``config.yaml`` as ``set_defaults`` entries (``group.key: value``) for the keys this
    parser knows."""
    saved = yaml.safe_load(path.read_text()) or {}
    known = parser.get_defaults()
    entries: dict[str, Any] = {}
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(known.get(key), Namespace):
            entries.update({f"{key}.{sub}": v for sub, v in value.items() if f"{key}.{sub}" in known})
        elif key in known:
            entries[key] = value
    return entries


def checkpoint_defaults(parser: LightningArgumentParser, path: Path, command: str) -> dict[str, Any]:
    """The defaults a checkpoint brings to ``command``: for a resumed fit its run's ``config.yaml``; the
    model's and the data's hyper-parameters; and its run folder as the logger's (``validate`` logs into
    ``version_N/validate``, so that its val/acc is not drawn onto the fit's own curve)."""
    settings = checkpoint_settings(load_checkpoint(path))
    run = run_folder(path)
    defaults: dict[str, Any] = {}
    if command == "fit" and run is not None and (run.path / "config.yaml").is_file():
        defaults.update(saved_config(parser, run.path / "config.yaml"))
    # the attribute list is the data's (linked to the model)
    defaults.update({f"model.{key}": value for key, value in settings.model.items() if key != "attributes"})
    defaults.update({f"data.{key}": value for key, value in settings.data.items()})
    if (
        command != "fit"
    ):  # drawn faces are generated only where a user asks (a demo fit), never at a path given now
        defaults["data.synthetic_images"] = None
    if run is not None:
        version = f"{run.version}/validate" if command == "validate" else run.version
        defaults["trainer.logger"] = {
            "class_path": TENSORBOARD,
            "init_args": {"save_dir": str(run.save_dir), "name": run.name, "version": version},
        }
    known = parser.get_defaults()
    return {key: value for key, value in defaults.items() if key in known}


class SmileCLI(LightningCLI):
    """LightningCLI for one command, with the attribute list linked from the data to the model, the
    best and last checkpoints, and a checkpoint's settings as defaults."""

    def __init__(self, command: str, args: list[str], description: str = "") -> None:
        self.command = command
        quiet_upstream()
        super().__init__(
            AttributeClassifier,
            CelebADataModule,
            run=False,
            args=args,
            trainer_defaults={"callbacks": [ResumableTraining(), PredictionWriter()]},
            save_config_callback=SaveRunConfig,
            save_config_kwargs={"overwrite": True},
            parser_class=SmileArgumentParser,
            auto_configure_optimizers=False,
            # fit falls back to seed 0 (the data order's own fallback); evaluation draws nothing random
            seed_everything_default=0 if command == "fit" else False,
            parser_kwargs={
                "prog": f"smile {command}",
                "allow_abbrev": False,
                "description": description,
                "formatter_class": PlainHelpFormatter,
            },
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        parser = super().init_parser(**kwargs)
        if self.command == "predict":  # smile predict PHOTO's options, for the did-you-mean
            from smile.commands.predict import build_parser

            parser.other_options = tuple(build_parser()._option_string_actions)  # type: ignore[attr-defined]
        return parser

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
        # Every command takes the same keys, so that a run's config.yaml is read by any of them.
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="A model: fit resumes from a checkpoint; validate, test and predict need one and evaluate it "
            "(smiling, attributes, best / last: the newest run's, or a file). Its run's settings are the "
            "defaults.",
        )
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
            "run folder's report/ (smile report makes it on its own, with more options).",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str] | None) -> None:
        """Parse ``args``; with ``--ckpt_path``, parse them again over the checkpoint's settings
        (:func:`checkpoint_defaults`). Then check the devices and the precision before anything starts."""
        config = parser.parse_args(args)
        if self.command != "fit":
            required(config.ckpt_path, self.command)  # never a freshly initialised network
        if config.ckpt_path:
            source = resolve(config.ckpt_path)
            path = source.checkpoint_path()
            note = source.note()
            if note:
                say(note)
            parser.set_defaults(checkpoint_defaults(parser, path, self.command))
            config = parser.parse_args(args)
            config.ckpt_path = str(path)
        check_devices(config.trainer.accelerator, config.trainer.devices)
        config.trainer.precision, change = cpu_precision(config.trainer.accelerator, config.trainer.precision)
        if change:
            say(change)
        self.config = config

    def best_checkpoint(self) -> str | None:
        """The file the ``checkpoint`` callback chose as best, named explicitly (``"best"`` would make
        Lightning guess among this and ``last_checkpoint``); ``None`` (the weights as they are) when it
        wrote none, as under ``fast_dev_run``."""
        best = next((cb for cb in self.trainer.checkpoint_callbacks if type(cb) is ModelCheckpoint), None)
        if best is not None and best.best_model_path:
            return best.best_model_path
        reason = "fast_dev_run writes no checkpoint" if self.trainer.fast_dev_run else "no best checkpoint"
        say(f"test_after_fit: {reason}; testing the weights as they are")
        return None

    def report(self) -> None:
        """The evaluation report after a test, into the run folder."""
        if not self.config.report or self.trainer.interrupted:
            return
        if self.trainer.fast_dev_run:
            say("fast_dev_run: no report (it writes no run folder)")
            return
        from smile.evaluation.runner import report_after_test

        report_after_test(self.trainer, self.model, self.datamodule)


def run(command: str, args: list[str], description: str = "") -> None:
    """Run ``command`` (fit, validate, test or predict) on the command line ``args``."""
    cli = SmileCLI(command, args, description)
    trainer, model, data, checkpoint = cli.trainer, cli.model, cli.datamodule, cli.config.ckpt_path
    if command == "fit":
        with quiet_resume() if checkpoint else contextlib.nullcontext():
            trainer.fit(model, datamodule=data, ckpt_path=checkpoint)
        if cli.config.test_after_fit and not trainer.interrupted:
            trainer.test(model, datamodule=data, ckpt_path=cli.best_checkpoint())
            cli.report()
    elif command == "validate":
        trainer.validate(model, datamodule=data, ckpt_path=checkpoint)
    elif command == "test":
        trainer.test(model, datamodule=data, ckpt_path=checkpoint)
        cli.report()
    elif command == "predict":
        trainer.predict(model, datamodule=data, ckpt_path=checkpoint, return_predictions=False)
    else:
        raise ValueError(f"not a Lightning command: {command}")
