"""The recipes (``configs/*.yaml``) by name, from a clone and from an installed package alike:
``--config smile`` is ``configs/smile.yaml``. The files live in the repository's ``configs/``; an
installed package carries them as ``smile/configs/`` (package data, ``pyproject.toml``).

A ``--config`` value that is an existing file is used as it is, whatever its name; a recipe's name
(``smile``, ``smile.yaml``) is its file; a path to a YAML file that is not there is a one-line error that
names the recipes. Anything else (jsonargparse also takes a YAML string) goes to the parser unchanged.
"""

from __future__ import annotations

from pathlib import Path

from smile.errors import OptionError

PACKAGE = Path(__file__).resolve().parent
#: Where the recipes are: inside the installed package, or the clone's own folder beside it.
FOLDERS = (PACKAGE / "configs", PACKAGE.parent / "configs")
SUFFIXES = (".yaml", ".yml")


def folder() -> Path | None:
    """The folder holding the recipes, ``None`` when neither the package nor a clone has one."""
    return next((path for path in FOLDERS if path.is_dir() and any(path.glob("*.yaml"))), None)


def names() -> list[str]:
    """The recipes' names (``smile``, ``attributes``, ...), sorted."""
    found = folder()
    return sorted(path.stem for path in found.glob("*.yaml")) if found else []


def recipe(name: str) -> Path | None:
    """The file of the recipe ``name`` (``smile`` or ``smile.yaml``), ``None`` when there is none."""
    found = folder()
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix in SUFFIXES else name
    if found is None or not stem or "/" in stem or "\\" in stem:
        return None
    path = found / f"{stem}.yaml"
    return path if path.is_file() else None


def listing() -> str:
    return ", ".join(names()) or "none found"


def resolve(value: str) -> str:
    """A ``--config`` value as the parser should get it (see the module's docstring)."""
    path = Path(value).expanduser()
    if path.is_file():
        return value
    found = recipe(value)
    if found is not None:
        return str(found)
    if path.suffix.lower() in (*SUFFIXES, ".json"):
        if recipe(path.name):
            hint = f"smile's recipe of that name is --config {path.stem}, from any folder"
            raise OptionError(
                f"--config {value}: no such file in {Path.cwd()}; {hint} (recipes: {listing()})"
            )
        raise OptionError(
            f"--config {value}: no such file in {Path.cwd()}; give a config file, or a recipe's name: {listing()}"
        )
    return value


def resolve_args(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config VALUE`` (or ``--config=VALUE``) :func:`resolve`\\ d."""
    out = list(argv)
    for index, arg in enumerate(out):
        if arg == "--config" and index + 1 < len(out):
            out[index + 1] = resolve(out[index + 1])
        elif arg.startswith("--config="):
            out[index] = "--config=" + resolve(arg.split("=", 1)[1])
    return out
