"""What the console shows: smile's own messages (:func:`say`, :func:`say_error`: library modules print
nothing themselves), help without reStructuredText markup, and only the upstream notices a user can act
on.

Help texts come from docstrings (ours and Lightning's) written for Sphinx; the terminal gets them plain.
Notices that the project cannot fix are silenced one by one, by message and module, never wholesale.
Nothing here imports torch, Lightning or jsonargparse.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from collections.abc import Iterator

from smile.distributed import connected, rank

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


def say(message: str, file=None) -> None:
    """Print ``message`` (to stderr unless ``file`` says otherwise) from rank 0 only: every process of a
    run would say the same."""
    if rank() == 0:
        print(message, file=file or sys.stderr, flush=True)


def say_error(message: str) -> None:
    """Print ``error: message`` once per run. Processes that fail before they connect all meet the same
    error (same options, same files), so only rank 0 says it; once connected, an error can be one
    process's own, so each says it, naming itself unless it is rank 0."""
    number = rank()
    if number == 0:
        print(f"error: {message}", file=sys.stderr)
    elif connected():
        print(f"error (process {number}): {message}", file=sys.stderr)


def plain(text: str) -> str:
    """``text`` with Sphinx roles and literal markup removed."""

    def role(match: re.Match) -> str:
        target = match.group(2).strip()
        return target.rsplit(".", 1)[-1] if match.group(1) else target

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


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
