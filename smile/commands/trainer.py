"""``smile fit``, ``validate`` and ``test`` (and ``predict`` on a split): the entry points, which print a
short help without loading Lightning or torch (``--help``) and otherwise run LightningCLI
(:mod:`smile.commands.lightning`). ``--help_all`` prints every option."""

from __future__ import annotations

#: What each command's help says it does.
DESCRIPTIONS = {
    "fit": "Train a model; --ckpt_path resumes a run where it stopped.",
    "validate": "Evaluate a checkpoint on the validation split.",
    "test": "Evaluate a checkpoint on the test split and write its evaluation report.",
    "predict": "smile predict --split test: write predictions.csv, a model's probabilities for the test "
    "split of its run's data.",
}

#: What each command's usage line says it needs (the evaluating ones a model: never a fresh network).
USAGES = {
    "validate": "validate --ckpt_path MODEL",
    "test": "test --ckpt_path MODEL",
    "predict": "predict --split test --ckpt_path MODEL",
}

#: The options that matter, one line each; ``--help_all`` lists them all.
OPTIONS = """  --config NAME|FILE         a recipe by name, from any folder: smile (Smiling), attributes (all 40),
                             notebook (the notebook's recipe), demo; overlays: full, ddp (the clone's
                             configs/); or a config file of your own
  --ckpt_path MODEL          {ckpt_rule}: smiling / attributes (shipped), best / last (the
                             newest run's) or a file; its run's settings are the defaults
  --data.root DIR            CelebA (official, torchvision or Kaggle layout), or your own labelled photos
                             (class folders or a CSV: --data.photos.positive, --data.photos.split)
  --data.attributes NAMES    what to predict: [Smiling], [Smiling, Male], or all
  --data.subsets.train N     only the first N training images (likewise val, test)
  --data.cache true          decode each split once and train from memory (much faster on small inputs)
  --data.batch_size N        images per batch and process (and --data.num_workers N)
  --model.net NAME           original, original_bn, resnet, mini_xception, ensemble
  --model.init NAME|FILE     start from a trained model: smiling, attributes, or a checkpoint
  --model.tta true           average each image's logits with its mirror image's
  --trainer.accelerator X    cpu, gpu or auto (and --trainer.devices N, --trainer.strategy ddp)
  --trainer.precision X      32-true, or bf16-mixed (GPUs, and CPUs with AVX512-BF16 or AMX)
  --trainer.max_epochs N     (and every other Trainer option)
  --print_config             print the whole configuration these options make, and stop"""


def short_help(command: str) -> str:
    rule = "a checkpoint to resume from" if command == "fit" else "required, the model to evaluate"
    extra = "\n  --test_after_fit true      after fit, test the best checkpoint" if command == "fit" else ""
    return (
        f"usage: smile {USAGES.get(command, command + ' [--config NAME|FILE]')} [options]\n\n{DESCRIPTIONS[command]}\n\n"
        f"options that matter (all of them: smile {command} --help_all):\n"
        f"{OPTIONS.format(ckpt_rule=rule)}{extra}\n"
    )


def run(command: str, argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(short_help(command), end="")
        return 0
    from smile import recipes

    argv = recipes.resolve_args(["--help" if arg == "--help_all" else arg for arg in argv])
    from smile.commands import lightning

    lightning.run(command, argv, DESCRIPTIONS[command])
    return 0


def fit(argv: list[str]) -> int:
    return run("fit", argv)


def validate(argv: list[str]) -> int:
    return run("validate", argv)


def test(argv: list[str]) -> int:
    return run("test", argv)


def predict(argv: list[str]) -> int:
    return run("predict", argv)
