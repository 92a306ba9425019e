"""Reading what a run wrote: the TensorBoard scalars of its run folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def _events(run: Path) -> Iterator[tuple[str, int, float]]:
    """``(tag, step, value)`` of every scalar in the run folder's event files, file by file, in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for events in sorted(run.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                yield tag, event.step, event.value


def scalars(folder: Path) -> dict[tuple[str, int], float]:
    """Every scalar logged to TensorBoard by the run in ``folder`` (its ``lightning_logs/version_0``), by
    (tag, step)."""
    return {(tag, step): value for tag, step, value in _events(folder / "lightning_logs/version_0")}


def last_scalars(run: Path) -> dict[str, float]:
    """The last value of every scalar logged in the run folder ``run`` (all its event files)."""
    return {tag: value for tag, _, value in _events(run)}
