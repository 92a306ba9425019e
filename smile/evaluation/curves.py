"""Training curves from a run's TensorBoard event files."""

from __future__ import annotations

from pathlib import Path

#: The epoch-level scalars the training curves show.
CURVE_TAGS = ("train/loss", "val/loss", "train/acc", "val/acc")


def read_curves(
    run_dir: str | Path, tags: tuple[str, ...] = CURVE_TAGS
) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(epoch, value), ...]}`` for the ``tags`` logged in ``run_dir``'s event files.

    Epochs are counted from 1 (the value after the first epoch is at 1). Lightning logs an ``epoch``
    scalar at the same step as each epoch-level metric, which gives each value its epoch; where an
    epoch has several values (a resumed run that repeated it, or validation more than once per
    epoch), the last one is kept. Tags that were never logged are absent.
    """
    run_dir = Path(run_dir)
    if not any(run_dir.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
    accumulator.Reload()
    available = set(accumulator.Tags().get("scalars", []))
    epoch_at_step: dict[int, int] = {}
    if "epoch" in available:
        for event in accumulator.Scalars("epoch"):
            epoch_at_step[event.step] = int(round(event.value))
    curves = {}
    for tag in tags:
        if tag not in available:
            continue
        by_epoch: dict[int, float] = {}
        for event in sorted(accumulator.Scalars(tag), key=lambda e: (e.step, e.wall_time)):
            epoch = epoch_at_step.get(event.step)
            if epoch is not None:
                by_epoch[epoch + 1] = float(event.value)
        if by_epoch:
            curves[tag] = sorted(by_epoch.items())
    return curves
