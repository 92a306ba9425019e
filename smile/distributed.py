"""Process-level chores of a distributed run: who speaks, and closing the process group at the end."""

from __future__ import annotations

import sys

import torch.distributed as dist
from pytorch_lightning.utilities.rank_zero import rank_zero_only


def connected() -> bool:
    """Whether this process is in a started process group (DDP)."""
    return dist.is_available() and dist.is_initialized()


def say(message: str) -> None:
    """Print ``message`` to stderr from rank 0 only: every process of a run would say the same."""
    if rank_zero_only.rank == 0:
        print(message, file=sys.stderr)


def say_error(message: str) -> None:
    """Print ``error: message`` once per run. Processes that fail before they connect all meet the same
    error (same options, same files), so only rank 0 says it; once connected, an error can be one
    process's own, so each says it, naming itself unless it is rank 0."""
    rank = rank_zero_only.rank
    if rank == 0:
        print(f"error: {message}", file=sys.stderr)
    elif connected():
        print(f"error (process {rank}): {message}", file=sys.stderr)


def end_process_group() -> None:
    """Destroy the default process group while the interpreter is still whole.

    Lightning does this at exit for NCCL only. A gloo group is otherwise left to interpreter shutdown
    with its C++ threads (``gloo_tcp_loop``, ``pt_gloo_runloop``) still running, and a process can then
    abort after its results with "terminate called without an active exception" (SIGABRT).
    """
    if connected():
        dist.destroy_process_group()
