"""A user's first hour: commands found, mistakes answered in one line, a console without noise."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import torch
from helpers.cli import FAST, run_smile

from smile.cli import COMMANDS, main
from smile.data.datamodule import CelebADataModule
from smile.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
#: What the console must not show: (what it is, a fragment of it).
NOISE = [
    ("LightningCLI's args warning", "args parameter is intended"),
    ("litlogger advertisement", "litlogger"),
    ("torch pytree deprecation", "LeafSpec"),
    ("ambiguous best checkpoint", "multiple `ModelCheckpoint`"),
    ("unseeded evaluation", "No seed found"),
    ("traceback", "Traceback"),
]


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    for name, fragment in NOISE:
        assert fragment not in output, f"{name}: {fragment!r} in\n{output[-3000:]}"


def test_help_lists_every_command_and_typos_suggest_the_nearest(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: smile <command>")
    for name, (_, line) in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(line)}$", out, re.MULTILINE), name
    assert main(["downlaod"]) == 2
    assert "unknown command 'downlaod': did you mean 'download'?" in capsys.readouterr().err
    for name in COMMANDS:  # every command's usage names smile
        try:
            code = main([name, "--help"])
        except SystemExit as exit:
            code = exit.code
        assert code in (0, None) and capsys.readouterr().out.startswith(f"usage: smile {name}"), name


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_console_script_and_imports_are_declared() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"smile": "smile.cli:main"}

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[<>=\[ ;]", spec)[0].lower().replace("_", "-") for spec in specs}

    declared = names(project["dependencies"])
    # smile/serve/ is imported only by `smile serve`, which needs the `serve` extra: there its packages
    # (and what they bring, e.g. fastapi's pydantic and starlette) count as declared
    serve = names(project["optional-dependencies"]["serve"])
    serve |= {n for pkg in serve for n in names(metadata.requires(pkg) or []) if _installed(pkg)}
    distributions = packages_distributions()
    missing = set()
    for path in (ROOT / "smile").rglob("*.py"):
        allowed = declared | serve if "serve" in path.relative_to(ROOT).parts else declared
        for node in ast.parse(path.read_text()).body:  # module-level imports: needed by every install
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "smile":
                    continue
                if not {d.lower().replace("_", "-") for d in distributions.get(top, [top])} & allowed:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not in [project.dependencies]: {sorted(missing)}"


def test_help_lists_choices_without_markup(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--help_all"])
    out = capsys.readouterr().out
    assert out.startswith("usage: smile")
    assert "--model.net {original,original_bn,resnet,mini_xception,ensemble}" in out
    assert "--model.optimizer {adam,adamw,sgd}" in out
    for markup in (":class:`", ":data:`", ":mod:`", ":func:`", "``"):
        assert markup not in out, markup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model.net", "bogus"],
            "expected one of: original, original_bn, resnet, mini_xception, ensemble; got bogus",
        ),
        (["--model.optimizr", "adam"], "(did you mean --model.optimizer?)"),
    ],
)
def test_bad_options_are_one_line_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) <= 5


def test_unknown_net_kwargs_name_the_accepted_ones(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    os.chdir(tmp_path)
    args = ["fit", "--model.net", "resnet", "--model.net_kwargs", '{"blokcs": 1}']
    assert main(args) == 2
    assert "error: model.net_kwargs: resnet takes no 'blokcs'; it accepts: widths, blocks" in (
        capsys.readouterr().err
    )


def test_a_checkpoint_carrying_code_is_refused_for_safety(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, tmp_path / "model.ckpt")
    for command in (["test", "--ckpt_path"], ["report", "--ckpt_path"], ["export", "--ckpt_path"]):
        assert main([*command, str(tmp_path / "model.ckpt")]) == 2
        err = capsys.readouterr().err
        assert "refused for safety: the file holds Python code or objects (posix.system)" in err
        assert "weights_only" not in err and "truncated" not in err
    assert not (tmp_path / "ran").exists()


def test_each_command_needs_only_its_splits(synthetic_root: Path, tmp_path: Path) -> None:
    """A folder whose partition file lists only test images serves test and predict, not fit."""
    root = tmp_path / "test-only"
    shutil.copytree(synthetic_root, root)
    partition = root / "list_eval_partition.txt"
    partition.write_text("".join(f"{line.split()[0]} 2\n" for line in partition.read_text().splitlines()))
    data = CelebADataModule(str(root), num_workers=0)
    data.setup("test")
    data.setup("predict")
    assert len(data.datasets["test"]) == 200 and "train" not in data.datasets
    with pytest.raises(
        DataError, match=r"The train split of .*list_eval_partition.txt is empty, and fit needs"
    ):
        data.setup("fit")
    with pytest.raises(DataError, match="The val split .* is empty, and validate needs it"):
        data.setup("validate")


def test_demo_and_fast_dev_run_on_a_quiet_console(synthetic_root: Path, tmp_path: Path) -> None:
    """The demo's config (test_after_fit, then the report) and Lightning's smoke test, in fresh processes."""
    demo = ["fit", "--config", str(ROOT / "configs" / "demo.yaml"), "--data.root", str(synthetic_root)]
    result = run_smile([*demo, *FAST, "--trainer.max_epochs", "1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout and "Wrote the evaluation report" in result.stderr
    assert_quiet(result)
    (tmp_path / "smoke").mkdir()
    result = run_smile([*demo, *FAST, "--trainer.fast_dev_run", "true"], tmp_path / "smoke")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fast_dev_run writes no checkpoint; testing the weights as they are" in result.stderr
    assert "test/acc" in result.stdout
    assert_quiet(result)


def test_each_option_has_one_spelling(capsys: pytest.CaptureFixture) -> None:
    """Version 0.1.0 dropped the old spellings (--root, --ckpt-path, dashed forms)."""
    from smile.commands.check_data import build_parser as check_parser
    from smile.commands.download import build_parser as download_parser
    from smile.commands.export import build_parser as export_parser
    from smile.commands.report import build_parser as report_parser

    for parser in (check_parser(), download_parser(), report_parser()):
        assert parser.parse_args(["--data.root", "x"]).root in ("x", Path("x"))
        with pytest.raises(SystemExit):
            parser.parse_args(["--root", "x"])
    new = download_parser().parse_args(["--keep_archives", "--image_format", "jpg", "--hf_repo", "a/b"])
    assert new.keep_archives and new.image_format == "jpg" and new.hf_repo == "a/b"
    with pytest.raises(SystemExit):
        download_parser().parse_args(["--keep-archives"])
    new = export_parser().parse_args(["--ckpt_path", "c", "--input_dtype", "uint8", "--no_check"])
    assert new.input_dtype == "uint8" and new.no_check
    for old in (["--ckpt-path", "c"], ["--ckpt_path", "c", "--input-dtype", "uint8"]):
        with pytest.raises(SystemExit):
            export_parser().parse_args(old)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--trainer.max_epoch", "2"], "arguments: --trainer.max_epoch 2 (did you mean --trainer.max_epochs?)"),
        (["fit", "--max-epochs", "2"], "arguments: --max-epochs 2 (did you mean --trainer.max_epochs?)"),
        (["fit", "--data.batch-size", "8"], "(did you mean --data.batch_size?)"),
        (["fit", "--trainer.max_epohcs", "2"], "(did you mean --trainer.max_epochs?)"),
        (["predict", "photo.jpg", "--annotate-dir", "marked"], "(did you mean --annotate_dir?)"),
        (["predict", "photo.jpg", "--thresh", "0.3"], "(did you mean --threshold?)"),
        (["report", "--ckpt", "x.ckpt"], "arguments: --ckpt x.ckpt (did you mean --ckpt_path?)"),
        (["serve", "--max-pixels", "100"], "arguments: --max-pixels 100 (did you mean --max_pixels?)"),
    ],
)  # fmt: skip
def test_options_are_spelled_out_and_a_near_miss_names_the_one_meant(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    """No abbreviations (``--trainer.max_epoch`` was taken for ``max_epochs``, ``--ckpt`` for
    ``--ckpt_path``); hyphens, a missing group and typos get the option meant."""
    os.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_dev_extra_installs_every_package_a_test_skips_without() -> None:
    """``pip install -e '.[dev]'`` runs every test that this machine can: a package a test skips without
    is in the dev extra (or a dependency), so that none skips for a missing install (h5py did)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    declared = {re.split(r"[<>=\[ ;]", spec)[0].lower().replace("_", "-") for spec in specs}
    distributions = packages_distributions()
    missing = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for name in re.findall(r"importorskip\(\s*[\"']([\w.]+)[\"']", path.read_text()):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            if not {d.lower().replace("_", "-") for d in distributions.get(top, [top])} & declared:
                missing.add(f"{top} ({path.name})")
    assert not missing, f"tests skip without these, which the dev extra does not install: {sorted(missing)}"
