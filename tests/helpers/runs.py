"""Reading what a run wrote: the TensorBoard scalars of its run folder."""

from __future__ import annotations

from pathlib import Path


def scalars(folder: Path) -> dict[tuple[str, int], float]:
    """Every scalar logged to TensorBoard by the run (all its event files), by (tag, step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for events in sorted((folder / "lightning_logs/version_0").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                found[(tag, event.step)] = event.value
    return found


def last_scalars(run: Path) -> dict[str, float]:
    """The last value of every scalar logged in the run folder ``run`` (all its event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found[tag] = accumulator.Scalars(tag)[-1].value
    return found
