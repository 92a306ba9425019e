"""Process-level chores of a distributed run: which process this is, and closing the process group at the end
(:mod:`smile.console` makes rank 0 the one that speaks).

Nothing here imports torch or Lightning: a command that never starts them (``smile predict PHOTO``,
``smile --help``) must not pay for their import. Where they are loaded, their state is read."""

from __future__ import annotations

import os
import sys

#: The variables that launchers (torchrun, Lightning's subprocess launcher, SLURM, LSF) set to a process's
#: global rank, in the order Lightning reads them.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def rank() -> int:
    """This process's global rank: Lightning's own once it runs, else the launcher's, else 0."""
    rank_zero = sys.modules.get("lightning_fabric.utilities.rank_zero")
    if rank_zero is not None and getattr(rank_zero.rank_zero_only, "rank", None) is not None:
        return int(rank_zero.rank_zero_only.rank)
    for name in RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def connected() -> bool:
    """Whether this process is in a started process group (DDP)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def end_process_group() -> None:
    """Destroy the default process group while the interpreter is still whole.

    Lightning does this at exit for NCCL only. A gloo group is otherwise left to interpreter shutdown
    with its C++ threads (``gloo_tcp_loop``, ``pt_gloo_runloop``) still running, and a process can then
    abort after its results with "terminate called without an active exception" (SIGABRT).
    """
    if connected():
        sys.modules["torch.distributed"].destroy_process_group()
