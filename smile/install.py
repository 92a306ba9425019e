"""How smile is installed: the one place that names its distribution on the package index.

The distribution is ``smile-faces`` (the name ``smile`` on the index belongs to an unrelated project);
the import name and the command stay ``smile``. Every install hint in an error message comes from
:func:`install_hint`, so that each names a line that works from the index and from a clone.
"""

from __future__ import annotations

#: The name on the package index: ``pip install smile-faces``.
DISTRIBUTION = "smile-faces"


def install_hint(extra: str | None = None) -> str:
    """The install line for ``extra`` (``None``: the base install), from the index and from a clone.

    >>> install_hint("export")
    "pip install 'smile-faces[export]' (from a clone: pip install '.[export]')"
    """
    if extra is None:
        return f"pip install {DISTRIBUTION} (from a clone: pip install .)"
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a clone: pip install '.[{extra}]')"
