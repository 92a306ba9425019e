"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no display, no pyplot
state), each saved atomically as a PNG."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from smile.evaluation.metrics import Counts
from smile.io import umask

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.fchmod(fd, 0o666 & ~umask())  # readable like any new file, not mkstemp's 0600
    os.close(fd)
    try:
        figure.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def confusion_matrix(counts: Counts, attribute: str, threshold: float, split: str) -> Figure:
    """2x2 counts, true label by row, with the share of each row."""
    matrix = np.array([[counts.tn, counts.fp], [counts.fn, counts.tp]], dtype=float)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = new_figure(4.6, 4.0)
    ax = figure.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [f"not {attribute}", attribute]
    for i in range(2):
        for j in range(2):
            colour = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(matrix[i, j])}\n{shares[i, j]:.1%}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], [f"pred. {n}" for n in names])
    ax.set_yticks([0, 1], [f"true {n}" for n in names], rotation=90, va="center")
    rates = counts.rates()
    ax.set_title(
        f"{attribute}: confusion matrix ({split}, threshold {threshold:g})\n"
        f"n={counts.n}  acc {_fmt(rates['acc'])}  TPR {_fmt(rates['tpr'])}  FPR {_fmt(rates['fpr'])}",
        fontsize=9,
    )
    return figure


def roc(
    fpr: np.ndarray,
    tpr: np.ndarray,
    area: float,
    attribute: str,
    split: str,
    points: Sequence[tuple[str, float, float]] = (),
) -> Figure:
    """The ROC curve with the chance diagonal and the operating points ``(label, fpr, tpr)``."""
    figure = new_figure(4.6, 4.4)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1, label="chance (AUROC 0.5)")
    ax.plot(fpr, tpr, color="C0", linewidth=2, label=f"model (AUROC {_fmt(area)})")
    for (label, x, y), marker in zip(points, "os^D"):
        ax.plot([x], [y], marker=marker, linestyle="none", markersize=7, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"{attribute}: ROC curve ({split})", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def reliability(bins: dict, attribute: str, split: str) -> Figure:
    """Observed frequency of the attribute against the mean predicted probability, per bin, over a
    histogram of how many images fall in each bin."""
    edges = np.asarray(bins["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    counts = np.asarray(bins["count"])
    mean_prob = np.asarray(bins["mean_prob"], dtype=float)
    frac_pos = np.asarray(bins["frac_pos"], dtype=float)
    figure = new_figure(4.6, 5.4)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    filled = counts > 0
    top.bar(
        centres[filled],
        frac_pos[filled],
        width=width * 0.9,
        color="C0",
        alpha=0.75,
        edgecolor="C0",
        label="fraction positive",
    )
    top.plot(mean_prob[filled], frac_pos[filled], "o-", color="C3", markersize=4, label="at mean probability")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel(f"fraction of images that are {attribute}")
    top.set_title(
        f"{attribute}: reliability ({split}, {len(counts)} bins)\nECE {_fmt(bins['ece'])}", fontsize=10
    )
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(centres, counts, width=width * 0.9, color="0.5")
    bottom.set_xlabel(f"predicted probability of {attribute}")
    bottom.set_ylabel("images")
    bottom.grid(alpha=0.3)
    return figure


def summary(
    attributes: Sequence[str],
    acc: Sequence[float],
    baseline: Sequence[float],
    area: Sequence[float],
    ece: Sequence[float],
    split: str,
) -> Figure:
    """Per attribute, sorted by accuracy: accuracy against the majority-class baseline, AUROC, ECE."""
    order = np.argsort(np.asarray(acc, dtype=float), kind="stable")
    names = [attributes[i] for i in order]
    y = np.arange(len(names))
    figure = new_figure(11, 1.2 + 0.24 * len(names))
    axes = figure.subplots(1, 3, sharey=True, width_ratios=[2, 1.2, 1])
    acc, baseline = np.asarray(acc, float)[order], np.asarray(baseline, float)[order]
    axes[0].barh(y, acc, color="C0", label="accuracy")
    axes[0].plot(baseline, y, "|", color="black", markersize=10, markeredgewidth=2, label="majority class")
    low = max(0.0, np.nanmin(np.r_[acc, baseline]) - 0.05)
    axes[0].set_xlim(low, 1.0)
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].set_title(f"accuracy, mean {np.nanmean(acc):.4f} ({split})", fontsize=10)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[1].barh(y, np.nan_to_num(np.asarray(area, float)[order]), color="C2")
    axes[1].axvline(0.5, color="black", linestyle="--", linewidth=1, zorder=3, label="chance")
    axes[1].legend(loc="lower right", fontsize=8)
    axes[1].set_xlim(0.0, 1.0)
    axes[1].set_title(f"AUROC, mean {np.nanmean(np.asarray(area, float)):.3f}", fontsize=10)
    axes[2].barh(y, np.nan_to_num(np.asarray(ece, float)[order]), color="C3")
    axes[2].set_title(f"ECE, mean {np.nanmean(np.asarray(ece, float)):.3f}", fontsize=10)
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.6, len(names) - 0.4)
    return figure


def fairness_bars(slices: dict[str, dict[str, dict]], attribute: str, split: str) -> Figure:
    """For one attribute: accuracy, TPR and FPR in each group of each group attribute."""
    figure = new_figure(4.2 * max(1, len(slices)), 3.8)
    axes = np.atleast_1d(figure.subplots(1, max(1, len(slices)), sharey=True, squeeze=False)[0])
    metrics = ("acc", "tpr", "fpr")
    for ax, (group_attribute, groups) in zip(axes, slices.items()):
        x = np.arange(len(metrics))
        width = 0.8 / max(1, len(groups))
        for k, (name, values) in enumerate(groups.items()):
            heights = [values[m] for m in metrics]
            bars = ax.bar(
                x + (k - (len(groups) - 1) / 2) * width,
                np.nan_to_num(heights),
                width,
                label=f"{name} (n={values['n']})",
            )
            for bar, value in zip(bars, heights):
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_height() + 0.01,
                    _fmt(value, 2),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(x, ["accuracy", "TPR", "FPR"])
        ax.set_ylim(0, 1.3)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(f"by {group_attribute}", fontsize=10)
        ax.legend(fontsize=8, loc="upper center", ncol=2)
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(f"{attribute}: accuracy, TPR and FPR within groups ({split})", fontsize=10)
    return figure


def fairness_gaps(
    attributes: Sequence[str], columns: Sequence[str], gaps: np.ndarray, supported: np.ndarray, split: str
) -> Figure:
    """A heat map of gaps (largest minus smallest group value), attributes by (group, metric);
    gaps from groups below the minimum count are hatched-out grey."""
    gaps = np.asarray(gaps, dtype=float)
    figure = new_figure(1.6 + 1.0 * len(columns), 1.4 + 0.26 * len(attributes))
    ax = figure.add_subplot()
    shown = np.where(np.asarray(supported), gaps, np.nan)
    vmax = max(0.05, float(np.nanmax(shown)) if np.isfinite(shown).any() else 0.05)
    image = ax.imshow(shown, cmap="Reds", vmin=0, vmax=vmax, aspect="auto")
    for i in range(gaps.shape[0]):
        for j in range(gaps.shape[1]):
            value = gaps[i, j]
            text = "n/a" if np.isnan(value) else f"{value:.2f}"
            colour = "0.55" if not supported[i, j] else ("white" if value > 0.6 * vmax else "black")
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(np.arange(len(columns)), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(attributes)), attributes, fontsize=8)
    ax.set_title(f"fairness gaps, |group A - group B| ({split})\ngrey: a group too small to rank", fontsize=9)
    figure.colorbar(image, ax=ax, shrink=0.6, label="gap")
    return figure


def error_grid(images: Sequence[np.ndarray], captions: Sequence[str], title: str, columns: int = 4) -> Figure:
    """Images in a grid, each with its caption."""
    rows = max(1, int(np.ceil(len(images) / columns)))
    figure = new_figure(2.2 * columns, 2.9 * rows + 0.5)
    axes = figure.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k])
            ax.set_title(captions[k], fontsize=8)
    if not images:
        axes[0, 0].text(0.5, 0.5, "no errors", ha="center", va="center", transform=axes[0, 0].transAxes)
    figure.suptitle(title, fontsize=10)
    return figure


def training_curves(curves: dict[str, list[tuple[int, float]]], title: str) -> Figure:
    """Loss and accuracy per epoch, train and val, from ``{"train/loss": [(epoch, value), ...], ...}``."""
    figure = new_figure(10, 4)
    axes = figure.subplots(1, 2)
    for ax, metric, label in zip(axes, ("loss", "acc"), ("BCE loss", "mean accuracy over attributes")):
        for stage, style in (("train", "o-"), ("val", "s-")):
            series = curves.get(f"{stage}/{metric}", [])
            if series:
                epochs, values = zip(*series)
                ax.plot(epochs, values, style, markersize=4, label=stage)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    figure.suptitle(title, fontsize=10)
    return figure
