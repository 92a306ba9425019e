"""``smile`` (or ``python -m smile``): one command tree, listed in :data:`COMMANDS`. Each command's
module (under :mod:`smile.commands`) is imported only when it runs, so ``smile --help`` is quick."""

from __future__ import annotations

import difflib
import importlib
import re
import signal
import sys

from smile import __version__

PROG = "smile"
#: Every command: name -> ("module:function" that runs it with the rest of the command line and returns
#: the exit status, its one-line help). A new command is one line here; ``smile --help`` lists them in
#: this order.
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("smile.commands.trainer:fit", "Train a model (try: smile fit --config demo)"),
    "validate": ("smile.commands.trainer:validate", "Evaluate a checkpoint on the validation split"),
    "test": ("smile.commands.trainer:test", "Evaluate a checkpoint on the test split and write its report"),
    "predict": ("smile.commands.predict:main", "Predict on your photos (or on a checkpoint's test split)"),
    "models": ("smile.commands.models:main", "List the trained models that ship with smile; print one's card"),
    "report": ("smile.commands.report:main", "Write the evaluation report of a checkpoint"),
    "thresholds": ("smile.commands.thresholds:main", "Choose a checkpoint's decision thresholds on validation"),
    "ensemble": ("smile.commands.ensemble:main", "Join trained checkpoints into one that predicts their mean logit"),
    "export": ("smile.commands.export:main", "Export a checkpoint to ONNX or torch.export (.pt2)"),
    "serve": ("smile.commands.serve:main", "Serve a model over HTTP, with a web page to try it (127.0.0.1:8000)"),
    "download": ("smile.commands.download:main", "Download CelebA (Google Drive, Hugging Face or Kaggle)"),
    "check-data": ("smile.commands.check_data:main", "Check a CelebA copy: every annotation row and every image"),
    "synthetic": ("smile.commands.synthetic:main", "Write a synthetic CelebA-format dataset (drawn faces)"),
}  # fmt: skip


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


def error_message(err: BaseException) -> str:
    """The message of ``err``; for an error re-raised from a data loader worker, the original one only
    (PyTorch puts the worker's whole traceback into the message)."""
    text = str(err)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last)
    return text


def stopped_by_signal(err: BaseException) -> bool:
    """Whether ``err`` is Lightning's stop on SIGTERM (or Ctrl-C, :mod:`smile.training.resume`); only a
    command that loaded Lightning can raise it."""
    exceptions = sys.modules.get("pytorch_lightning.utilities.exceptions")
    return exceptions is not None and isinstance(err, exceptions.SIGTERMException)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``smile`` and ``python -m smile``: returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"error: {unknown_command(args[0])}", file=sys.stderr)
        return 2
    from smile.console import say, say_error
    from smile.distributed import end_process_group
    from smile.errors import SmileError
    from smile.io import DiskFull
    from smile.versions import check_torch_pair, is_mismatch_error, message

    module, function = COMMANDS[args[0]][0].split(":")
    try:
        check_torch_pair()
        return int(getattr(importlib.import_module(module), function)(args[1:]) or 0)
    except DiskFull as err:  # the input was fine; the work could not be saved
        say_error(error_message(err))
        return 1
    except SmileError as err:
        say_error(error_message(err))
        return 2
    except BaseException as err:  # Lightning's stop on a signal is a SystemExit
        if is_mismatch_error(err):  # a pair whose versions looked right, yet does not load together
            say_error(message())
            return 2
        if not stopped_by_signal(err):
            raise
        from smile.training import resume

        signum = resume.stopped_by or signal.SIGTERM
        say(f"Stopped by {signal.Signals(signum).name}. Continue with: python -m smile fit --ckpt_path last")
        return 128 + int(signum)
    finally:
        end_process_group()
