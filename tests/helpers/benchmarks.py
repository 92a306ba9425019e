"""The benchmark scripts (``benchmarks/*.py``, not a package) imported as modules, for testing their logic."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@contextlib.contextmanager
def benchmark(name: str) -> Iterator[ModuleType]:
    """``benchmarks/NAME.py`` as a module, registered under its name (its dataclasses look it up there) and
    with ``benchmarks/`` on ``sys.path`` (for the scripts it builds on), both undone afterwards."""
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
        sys.path.remove(str(BENCHMARKS))
