"""What the console shows: help without reStructuredText markup, and only the upstream notices a user can act on.

Help texts come from docstrings (ours and Lightning's) written for Sphinx; the terminal gets them plain.
Notices that the project cannot fix are silenced one by one, by message and module, never wholesale.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

from jsonargparse import DefaultHelpFormatter

#: ``:class:`~a.b.C``` -> ``C``; ``:func:`a.b``` -> ``a.b``; ````x```` -> ``x``.
_ROLE = re.compile(r":[a-z]+:`(~?)([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)

#: Upstream warnings: (message regex, module regex). The project causes none of them; each is named here.
UPSTREAM_WARNINGS = (
    # Lightning 2.6 calls torch's deprecated pytree API on every loop start (fixed upstream, not released).
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"pytorch_lightning\.utilities\._pytree"),
)
#: Upstream warnings that are noise when a fit resumes a run (message regexes): its checkpoints/ folder
#: holds the checkpoints it resumes from, as it must.
RESUME_WARNINGS = (r"Checkpoint directory .* exists and is not empty",)
#: Upstream log lines: (logger name, message prefix).
UPSTREAM_LOG_LINES = (
    # An advertisement for a cloud service, printed by every Trainer.
    ("pytorch_lightning.utilities.rank_zero", "💡 Tip: For seamless cloud logging"),
)


def plain(text: str) -> str:
    """``text`` with Sphinx roles and literal markup removed."""

    def role(match: re.Match) -> str:
        target = match.group(2).strip()
        return target.rsplit(".", 1)[-1] if match.group(1) else target

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


class PlainHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with docstring markup removed from option and group texts."""

    def _expand_help(self, action) -> str:
        return plain(super()._expand_help(action))

    def start_section(self, heading: str | None) -> None:
        super().start_section(plain(heading) if heading else heading)

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))


class _DropPrefix(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


_installed = False


@contextlib.contextmanager
def quiet_resume() -> Iterator[None]:
    """Within it, :data:`RESUME_WARNINGS` are silenced (a resumed fit's)."""
    with warnings.catch_warnings():
        for message in RESUME_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def quiet_upstream() -> None:
    """Silence :data:`UPSTREAM_WARNINGS` and :data:`UPSTREAM_LOG_LINES` (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    for message, module in UPSTREAM_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
    for name, prefix in UPSTREAM_LOG_LINES:
        logging.getLogger(name).addFilter(_DropPrefix(prefix))
