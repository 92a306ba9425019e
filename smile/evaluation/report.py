"""The evaluation report, from arrays: every figure in ``metrics.json``, a readable ``report.md`` and
PNG plots. Nothing here touches a model or a data loader (see :mod:`smile.evaluation.runner`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smile.evaluation import metrics as m
from smile.evaluation import plots
from smile.evaluation.thresholds import DEFAULT_THRESHOLD, MIN_TUNE_COUNT, tune_thresholds
from smile.io import atomic_write

#: The group attributes of the fairness slices unless told otherwise.
#: With more reported attributes than this, per-attribute figures are drawn for a chosen few only.
MAX_DEFAULT_PLOTS = 5
#: ROC curves stored in metrics.json are thinned to about this many points.
ROC_POINTS = 200
#: CelebA labels known to be noisy or ill-defined (published per-attribute accuracies stay near 70-85%);
#: the report gives their measured agreement between images of the same person.
NOISY_LABELS = ("Attractive", "Blurry", "Oval_Face", "Pointy_Nose", "Narrow_Eyes")


@dataclass
class Predictions:
    """A split's predictions: ``probs`` and ``labels`` are ``(images, attributes)``; ``groups`` maps a
    group attribute to its ``(images,)`` 0/1 labels; ``files`` names the images (for the error grid);
    ``identities`` gives each image's person (``identity_CelebA.txt``; -1 unknown), when known."""

    attributes: list[str]
    probs: np.ndarray
    labels: np.ndarray
    files: list[str] = field(default_factory=list)
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    split: str = "test"
    identities: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.probs = np.asarray(self.probs, dtype=np.float64).reshape(len(self.probs), -1)
        self.labels = np.asarray(self.labels).astype(np.int64).reshape(len(self.labels), -1)
        if self.probs.shape != self.labels.shape or self.probs.shape[1] != len(self.attributes):
            raise ValueError(
                f"probs {self.probs.shape} and labels {self.labels.shape} must be (images, "
                f"{len(self.attributes)} attributes)"
            )
        if self.files and len(self.files) != len(self.probs):
            raise ValueError(f"{len(self.files)} files for {len(self.probs)} predictions")
        if self.identities is not None and len(self.identities) != len(self.probs):
            raise ValueError(f"{len(self.identities)} identities for {len(self.probs)} predictions")

    def column(self, attribute: str) -> tuple[np.ndarray, np.ndarray]:
        k = self.attributes.index(attribute)
        return self.probs[:, k], self.labels[:, k]

    def select(self, attributes: Sequence[str]) -> Predictions:
        index = [self.attributes.index(name) for name in attributes]
        return Predictions(
            list(attributes),
            self.probs[:, index],
            self.labels[:, index],
            self.files,
            self.groups,
            self.split,
            self.identities,
        )


def person_agreement(labels: np.ndarray, identities: np.ndarray) -> dict[str, float | int]:
    """How often two images of the same person carry the same label: over all pairs of images of one
    person (people with one image, or unknown (-1), add none), with ``chance``, the agreement of two
    labels drawn independently at the split's prevalence, and ``ceiling``, the accuracy a perfect model
    would score if the trait never changed between a person's photos and each label were flipped
    independently with one rate ``e`` (agreement ``(1 - e)^2 + e^2``, ceiling ``1 - e``). For such a
    trait (a nose's shape) disagreement is label noise; for one that changes (blur, a smile), it is
    partly real, and the ceiling is only a lower bound."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    identities = np.asarray(identities).reshape(-1)
    known = identities >= 0
    _, person = np.unique(identities[known], return_inverse=True)
    sizes = np.bincount(person)
    positives = np.bincount(person, weights=labels[known]).astype(np.int64)
    pairs = sizes * (sizes - 1) // 2
    agreeing = positives * (positives - 1) // 2 + (sizes - positives) * (sizes - positives - 1) // 2
    prevalence = float(labels[known].mean()) if known.any() else m.NAN
    agreement = float(agreeing.sum() / pairs.sum()) if pairs.sum() else m.NAN
    return {
        "agreement": agreement,
        "pairs": int(pairs.sum()),
        "people": int(np.sum(sizes > 1)),
        "chance": prevalence**2 + (1 - prevalence) ** 2,
        "ceiling": 0.5 * (1 + np.sqrt(max(2 * agreement - 1, 0.0))) if not math.isnan(agreement) else m.NAN,
    }


def per_attribute_thresholds(threshold: float | Sequence[float], attributes: Sequence[str]) -> list[float]:
    """One threshold per attribute: ``threshold`` for all, or the given list (checked against the names)."""
    if isinstance(threshold, (int, float)):
        return [float(threshold)] * len(attributes)
    values = [float(t) for t in threshold]
    if len(values) != len(attributes):
        raise ValueError(f"{len(values)} thresholds for {len(attributes)} attributes")
    return values


def group_names(group_attribute: str) -> tuple[str, str]:
    """The names of the images where ``group_attribute`` is 1 and where it is 0."""
    return group_attribute, f"not {group_attribute}"


def default_plot_attributes(attributes: Sequence[str]) -> list[str]:
    """All of them when there are at most :data:`MAX_DEFAULT_PLOTS`; else Smiling if present, else the first."""
    if len(attributes) <= MAX_DEFAULT_PLOTS:
        return list(attributes)
    return ["Smiling"] if "Smiling" in attributes else [attributes[0]]


def compute_metrics(
    test: Predictions,
    val: Predictions | None = None,
    *,
    threshold: float | Sequence[float] = DEFAULT_THRESHOLD,
    threshold_source: str | None = None,
    bins: int = 15,
    criterion: str = "acc",
    min_group_count: int = 20,
    min_tune_count: int = MIN_TUNE_COUNT,
    roc_attributes: Sequence[str] = (),
) -> dict[str, Any]:
    """Every figure of the report, as a JSON-ready dict (NaN where a figure is undefined).

    ``threshold``: one for all attributes, or one per attribute (the model's own, which
    ``threshold_source`` describes); where an attribute's differs from 0.5, its accuracy and balanced
    accuracy at 0.5 are given too (``at_default``). Per attribute, at its threshold: counts, accuracy, the majority-class baseline (the accuracy of
    always answering the split's more common label), balanced accuracy, precision, TPR, FPR, F1,
    AUROC, ECE and the reliability bins. With ``val``: the threshold that maximises ``criterion`` on
    val, and the test figures at that threshold, for each attribute with at least ``min_tune_count``
    validation images of each class (a threshold tuned on a handful of images fits their noise; the
    others keep ``threshold``, marked untuned; with none tuned, the report has no tuned figures). Fairness: accuracy, TPR and FPR within the groups of
    each of ``test.groups``, with the gap between the groups; gaps whose groups hold fewer than
    ``min_group_count`` images behind the metric (images, positives or negatives) are kept but not
    ranked among the largest. With ``test.identities``: each label's agreement between images of the
    same person (:func:`person_agreement`).
    """
    cuts = dict(zip(test.attributes, per_attribute_thresholds(threshold, test.attributes)))
    if val is not None:
        chosen, tuned_mask = tune_thresholds(val.probs, val.labels, criterion, min_tune_count)
    per_attribute: dict[str, dict[str, Any]] = {}
    for k, attribute in enumerate(test.attributes):
        probs, labels = test.column(attribute)
        cut = cuts[attribute]
        counts = m.confusion(probs, labels, cut)
        rates = counts.rates()
        prevalence = counts.positives / counts.n if counts.n else m.NAN
        rel = m.reliability(probs, labels, bins)
        row: dict[str, Any] = {
            "threshold": cut,
            "n": counts.n,
            "positives": counts.positives,
            "prevalence": prevalence,
            "tp": counts.tp,
            "fp": counts.fp,
            "tn": counts.tn,
            "fn": counts.fn,
            "acc": rates["acc"],
            "majority_baseline": max(prevalence, 1 - prevalence),
            "balanced_acc": rates["balanced_acc"],
            "precision": rates["precision"],
            "tpr": rates["tpr"],
            "fpr": rates["fpr"],
            "f1": rates["f1"],
            "auroc": m.auroc(probs, labels),
            "ece": rel["ece"],
            "mean_prob": float(probs.mean()) if len(probs) else m.NAN,
            "reliability": rel,
        }
        if cut != DEFAULT_THRESHOLD:
            default = m.confusion(probs, labels, DEFAULT_THRESHOLD).rates()
            row["at_default"] = {"acc": default["acc"], "balanced_acc": default["balanced_acc"]}
        if test.identities is not None:
            row["person_agreement"] = person_agreement(labels, test.identities)
        if val is not None:
            val_probs, val_labels = val.column(attribute)
            positives = int(np.sum(val_labels))
            enough = bool(tuned_mask[k])
            tuned_cut = float(chosen[k]) if enough else cut
            val_score = m.confusion(val_probs, val_labels, tuned_cut).rates()[criterion] if enough else m.NAN
            tuned = m.confusion(probs, labels, tuned_cut).rates()
            row["tuned"] = {
                "tuned": enough,
                "threshold": tuned_cut,
                f"val_{criterion}": val_score,
                "val_positives": positives,
                "val_negatives": len(val_labels) - positives,
                "acc": tuned["acc"],
                "balanced_acc": tuned["balanced_acc"],
                "f1": tuned["f1"],
            }
        if attribute in roc_attributes:
            fpr, tpr, thresholds = m.roc_curve(probs, labels)
            index = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).round().astype(int))
            row["roc"] = {  # thinned; the first point (threshold null) predicts nothing positive
                "fpr": fpr[index].tolist(),
                "tpr": tpr[index].tolist(),
                "threshold": thresholds[index].tolist(),
            }
        per_attribute[attribute] = row

    untuned = [name for name, row in per_attribute.items() if "tuned" in row and not row["tuned"]["tuned"]]
    if val is not None and len(untuned) == len(per_attribute):  # nothing tuned: no "tuned" figures at all
        for row in per_attribute.values():
            del row["tuned"]
        tuning_val = val
        val = None
    else:
        tuning_val = val

    def mean_of(key: str, source: Callable[[dict], float] | None = None) -> float:
        values = [source(row) if source else row[key] for row in per_attribute.values()]
        values = [v for v in values if not (v is None or math.isnan(v))]
        return float(np.mean(values)) if values else m.NAN

    summary = {
        "num_attributes": len(test.attributes),
        "num_images": len(test.probs),
        "mean_acc": mean_of("acc"),
        "mean_majority_baseline": mean_of("majority_baseline"),
        "mean_balanced_acc": mean_of("balanced_acc"),
        "mean_f1": mean_of("f1"),
        "mean_auroc": mean_of("auroc"),
        "mean_ece": mean_of("ece"),
    }
    if any("at_default" in row for row in per_attribute.values()):
        summary["mean_acc_at_default"] = mean_of("", lambda row: row.get("at_default", row)["acc"])
        summary["mean_balanced_acc_at_default"] = mean_of(
            "", lambda row: row.get("at_default", row)["balanced_acc"]
        )
    if val is not None:
        summary["mean_acc_tuned"] = mean_of("", lambda row: row["tuned"]["acc"])
        summary["mean_balanced_acc_tuned"] = mean_of("", lambda row: row["tuned"]["balanced_acc"])

    fairness: dict[str, dict[str, Any]] = {}
    for group_attribute, group in test.groups.items():
        fairness[group_attribute] = {}
        for attribute in test.attributes:
            if attribute == group_attribute:
                continue  # within its own groups an attribute has only positives or only negatives
            probs, labels = test.column(attribute)
            slices = m.group_slices(probs, labels, group, group_names(group_attribute), cuts[attribute])
            fairness[group_attribute][attribute] = {"groups": slices, "gaps": m.gaps(slices, min_group_count)}
    largest: dict[str, Any] = {}
    for metric in m.GAP_SUPPORT:
        best = None
        for group_attribute, rows in fairness.items():
            for attribute, entry in rows.items():
                gap = entry["gaps"][metric]
                if gap["supported"] and (best is None or gap["gap"] > best["gap"]):
                    best = {"gap": gap["gap"], "attribute": attribute, "group": group_attribute}
        largest[metric] = best

    uniform = len(set(cuts.values())) <= 1
    return {
        "split": test.split,
        "threshold": next(iter(cuts.values()), DEFAULT_THRESHOLD) if uniform else None,
        "thresholds": cuts,
        "threshold_source": threshold_source,
        "threshold_criterion": criterion if val is not None else None,
        "val_split_images": len(tuning_val.probs) if tuning_val is not None else None,
        "min_tune_count": min_tune_count,
        "untuned_attributes": untuned if tuning_val is not None else [],
        "ece_bins": bins,
        "min_group_count": min_group_count,
        "attributes": list(test.attributes),
        "summary": summary,
        "per_attribute": per_attribute,
        "fairness": fairness,
        "fairness_largest_gaps": largest,
    }


def confident_errors(
    test: Predictions, attribute: str, count: int = 16, threshold: float = 0.5
) -> list[dict[str, Any]]:
    """The ``count`` wrong predictions of ``attribute`` made with the most confidence (probability
    furthest from the true label), most confident first."""
    probs, labels = test.column(attribute)
    wrong = np.flatnonzero((probs > threshold) != (labels == 1))
    wrong = wrong[np.argsort(-np.abs(probs[wrong] - labels[wrong]), kind="stable")][:count]
    return [
        {
            "attribute": attribute,
            "index": int(i),
            "file": str(test.files[i]) if test.files else None,
            "label": int(labels[i]),
            "prob": float(probs[i]),
            "kind": "false positive" if labels[i] == 0 else "false negative",
        }
        for i in wrong
    ]


# --- metrics.json and report.md ------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def threshold_phrase(report: dict[str, Any]) -> str:
    """``0.5``, or what the per-attribute thresholds are."""
    if report["threshold"] is not None:
        return f"{report['threshold']:g}"
    return "each attribute's own threshold" + (
        f" ({report['threshold_source']})" if report.get("threshold_source") else ""
    )


def tuning_note(report: dict[str, Any]) -> str:
    """One sentence on the thresholds tuned on the validation split, or why there are none."""
    images, least, untuned = (
        report["val_split_images"],
        report["min_tune_count"],
        report["untuned_attributes"],
    )
    if report["threshold_criterion"] is None:
        return (
            f"Thresholds not tuned: the validation split ({images} images) holds fewer than {least} images "
            f"of each class for every attribute, so all figures are at {threshold_phrase(report)}."
        )
    note = (
        f"Figures at {threshold_phrase(report)}; for comparison, the 'tuned on val' rows use "
        f"thresholds that maximise {report['threshold_criterion']} on the validation split ({images} images), "
        f"applied to {report['split']} unchanged"
    )
    if untuned:
        keep = threshold_phrase(report) if report["threshold"] is not None else "their own threshold"
        note += f"; {', '.join(untuned)} keep {keep} (fewer than {least} validation images of one class)"
    return note + "."


def noisy_label_notes(report: dict[str, Any]) -> list[str]:
    """What the same-person agreement says, and the figures of :data:`NOISY_LABELS`."""
    per = report["per_attribute"]
    known = [name for name in per if "person_agreement" in per[name]]
    if not known:
        return []
    first = per[known[0]]["person_agreement"]
    lines = [
        f"*Same-person agreement*: the share of pairs of {report['split']} images of one person "
        f"({first['pairs']} pairs, {first['people']} people with two or more images) whose labels agree; "
        "*chance* is the agreement of two labels drawn at random at the split's prevalence. For a trait a "
        "person keeps between photos (the shape of a nose or face) every disagreement is label noise, and "
        "*ceiling* is the accuracy a perfect model would score against labels flipped at the rate that "
        "explains the agreement; for a trait that changes (blur, a smile, narrowed eyes) part of the "
        "disagreement is real and the ceiling is only a lower bound.",
        "",
    ]
    rows = []
    for name in [n for n in NOISY_LABELS if n in known]:
        r, a = per[name], per[name]["person_agreement"]
        rows.append(
            [
                name,
                _f(a["agreement"], 3),
                _f(a["chance"], 3),
                _f(a["ceiling"], 3),
                _f(r["acc"]),
                _f(r["majority_baseline"]),
            ]
        )
    if rows:
        lines += [
            "Labels known to be noisy or ill-defined in CelebA:",
            "",
            *_table(
                ["attribute", "same-person agreement", "chance", "ceiling", "model acc", "majority"], rows
            ),
        ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: the summary, the per-attribute table sorted by accuracy, fairness, the figures."""
    s = report["summary"]
    per = report["per_attribute"]
    tuned = report.get("threshold_criterion") is not None
    source = report.get("source", {})
    lines = [f"# Evaluation report: {source.get('checkpoint', 'predictions')}", ""]
    if source:
        details = [f"{k}: `{v}`" for k, v in source.items() if k != "checkpoint" and v is not None]
        lines += ["- " + d for d in details] + [""]
    lines += [
        f"Split **{report['split']}**, {s['num_images']} images, {s['num_attributes']} attributes. An image is "
        f"predicted positive when its probability exceeds {threshold_phrase(report)}.",
        "",
        "## Summary",
        "",
    ]
    rows = [
        [f"mean accuracy over {s['num_attributes']} attributes", _f(s["mean_acc"])],
        ["mean majority-class baseline (always the more common label)", _f(s["mean_majority_baseline"])],
        ["mean balanced accuracy (the majority baseline's is 0.5)", _f(s["mean_balanced_acc"])],
        ["mean F1 (positive class)", _f(s["mean_f1"])],
        ["mean AUROC", _f(s["mean_auroc"])],
        [f"mean ECE ({report['ece_bins']} bins)", _f(s["mean_ece"])],
    ]
    if "mean_acc_at_default" in s:
        rows += [
            ["mean accuracy at threshold 0.5", _f(s["mean_acc_at_default"])],
            ["mean balanced accuracy at threshold 0.5", _f(s["mean_balanced_acc_at_default"])],
        ]
    if tuned:
        rows += [
            [
                f"mean accuracy, thresholds tuned on val ({report['threshold_criterion']})",
                _f(s["mean_acc_tuned"]),
            ],
            ["mean balanced accuracy, thresholds tuned on val", _f(s["mean_balanced_acc_tuned"])],
        ]
    lines += _table(["figure", "value"], rows) + [""]

    lines += [
        f"## Per attribute ({'threshold ' if report['threshold'] is not None else 'at '}{threshold_phrase(report)}), "
        "sorted by accuracy, highest first",
        "",
    ]
    header = ["attribute", "acc", "majority", "bal. acc", "F1", "AUROC", "ECE", "TPR", "FPR", "positives"]
    own = report["threshold"] is None
    agreement = any("person_agreement" in r for r in per.values())
    if own:
        header += ["threshold", "acc @ 0.5", "bal. acc @ 0.5"]
    if agreement:
        header += ["same-person agreement"]
    if tuned:
        header += [f"tuned thr. (val {report['val_split_images']})", "acc @ tuned", "bal. acc @ tuned"]
    order = sorted(per, key=lambda name: (-np.nan_to_num(per[name]["acc"], nan=-1.0), name))
    rows = []
    for name in order:
        r = per[name]
        row = [
            name,
            _f(r["acc"]),
            _f(r["majority_baseline"]),
            _f(r["balanced_acc"]),
            _f(r["f1"]),
            _f(r["auroc"]),
            _f(r["ece"]),
            _f(r["tpr"], 3),
            _f(r["fpr"], 3),
            f"{r['positives']} ({r['prevalence']:.1%})" if r["n"] else "0",
        ]
        if own:
            at_default = r.get("at_default", r)
            row += [_f(r["threshold"], 3), _f(at_default["acc"]), _f(at_default["balanced_acc"])]
        if agreement:
            row += [_f(r.get("person_agreement", {}).get("agreement"), 3)]
        if tuned:
            shown = _f(r["tuned"]["threshold"], 3) if r["tuned"]["tuned"] else "not tuned"
            row += [shown, _f(r["tuned"]["acc"]), _f(r["tuned"]["balanced_acc"])]
        rows.append(row)
    lines += _table(header, rows) + [""]
    lines += [
        "*majority*: the accuracy of always answering the split's more common label. *TPR*: share of the "
        "attribute's images found; *FPR*: share of the others wrongly flagged. *ECE*: expected "
        "calibration error of the predicted probability (see the reliability diagrams).",
        "",
    ]
    lines += [tuning_note(report), ""] if report.get("val_split_images") is not None else []
    if agreement:
        lines += ["## Noisy labels", "", *noisy_label_notes(report), ""]

    fairness = report["fairness"]
    if fairness:
        lines += ["## Fairness slices", ""]
        lines += [
            f"Accuracy, TPR and FPR within groups defined by {', '.join(fairness)}; the gap is the "
            f"absolute difference between the two groups. Gaps where a group has fewer than "
            f"{report['min_group_count']} images behind the metric (all images for accuracy, positives for "
            "TPR, negatives for FPR) are marked * and not ranked.",
            "",
            "Largest gap per metric:",
            "",
        ]
        for metric, best in report["fairness_largest_gaps"].items():
            label = {"acc": "accuracy", "tpr": "TPR", "fpr": "FPR"}[metric]
            if best is None:
                lines.append(f"- {label}: none with large enough groups")
            else:
                lines.append(f"- {label}: {best['gap']:.4f}, {best['attribute']} by {best['group']}")
        lines.append("")
        for group_attribute, entries in fairness.items():
            yes, no = group_names(group_attribute)
            lines += [f"### By {group_attribute}", ""]
            header = [
                "attribute",
                f"n {yes} / {no}",
                f"acc {yes}",
                f"acc {no}",
                "acc gap",
                f"TPR {yes}",
                f"TPR {no}",
                "TPR gap",
                f"FPR {yes}",
                f"FPR {no}",
                "FPR gap",
            ]
            rows = []
            for name in sorted(
                entries, key=lambda a: -np.nan_to_num(entries[a]["gaps"]["acc"]["gap"], nan=-1.0)
            ):
                g, gaps = entries[name]["groups"], entries[name]["gaps"]

                def gap(metric: str, gaps: dict = gaps) -> str:
                    return _f(gaps[metric]["gap"], 3) + ("" if gaps[metric]["supported"] else "*")

                rows.append(
                    [
                        name,
                        f"{g[yes]['n']} / {g[no]['n']}",
                        _f(g[yes]["acc"], 3),
                        _f(g[no]["acc"], 3),
                        gap("acc"),
                        _f(g[yes]["tpr"], 3),
                        _f(g[no]["tpr"], 3),
                        gap("tpr"),
                        _f(g[yes]["fpr"], 3),
                        _f(g[no]["fpr"], 3),
                        gap("fpr"),
                    ]
                )
            lines += _table(header, rows) + [""]

    figures = report.get("figures", {})
    if figures:
        lines += ["## Figures", ""]
        for title, files in figures.items():
            lines += [f"### {title}", ""]
            lines += [f"![{Path(f).stem}]({f})" for f in files] + [""]
    errors = report.get("confident_errors", {})
    if errors:
        lines += ["## Most confident errors", ""]
        for attribute, items in errors.items():
            shown = ", ".join(
                f"{Path(e['file']).name if e['file'] else e['index']} "
                f"({'FP' if e['label'] == 0 else 'FN'}, p={e['prob']:.3f})"
                for e in items[:8]
            )
            lines += [f"- {attribute}: {shown}" + (" ..." if len(items) > 8 else "")]
        lines.append("")
    curves = report.get("training_curves", {})
    if curves:
        lines += ["## Training curves", ""]
        epochs = sorted({e for series in curves.values() for e, _ in series})
        header = ["epoch", *curves]
        values = {tag: dict(series) for tag, series in curves.items()}
        rows = [[str(e), *(_f(values[tag].get(e)) for tag in curves)] for e in epochs]
        lines += _table(header, rows) + [""]
    return "\n".join(lines)


# --- writing the folder --------------------------------------------------------------------------


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def write_report(
    out: str | Path,
    test: Predictions,
    val: Predictions | None = None,
    *,
    plot_attributes: Sequence[str] | None = None,
    curves: dict[str, list[tuple[int, float]]] | None = None,
    load_image: Callable[[str], np.ndarray] | None = None,
    errors: int = 16,
    source: dict[str, Any] | None = None,
    on_figure: Callable[[str, Path], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Compute the report and write ``out/metrics.json``, ``out/report.md`` and the PNGs.

    ``plot_attributes``: the attributes that get a confusion matrix, ROC curve, reliability diagram,
    fairness bars and error grid (default :func:`default_plot_attributes`); a summary figure covers
    all, and a fairness heat map all when there are groups. ``load_image(file)`` gives an ``HxWx3``
    array for the error grid (no grid without it). ``on_figure(name, path)`` is called for each PNG
    written (to log it elsewhere). ``options`` go to :func:`compute_metrics`. Returns the report dict.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_attributes = list(
        default_plot_attributes(test.attributes) if plot_attributes is None else plot_attributes
    )
    missing = [a for a in plot_attributes if a not in test.attributes]
    if missing:
        raise ValueError(f"plot attributes {missing} are not among the reported {test.attributes}")
    report = compute_metrics(test, val, roc_attributes=plot_attributes, **options)
    report["source"] = dict(source or {})
    report["plot_attributes"] = plot_attributes
    figures: dict[str, list[str]] = {}

    def emit(section: str, name: str, figure: Any) -> None:
        path = plots.save_png(figure, out / f"{name}.png")
        figures.setdefault(section, []).append(path.name)
        if on_figure is not None:
            on_figure(name, path)

    per = report["per_attribute"]
    emit(
        "All attributes",
        "summary",
        plots.summary(
            test.attributes,
            [per[a]["acc"] for a in test.attributes],
            [per[a]["majority_baseline"] for a in test.attributes],
            [per[a]["auroc"] for a in test.attributes],
            [per[a]["ece"] for a in test.attributes],
            test.split,
        ),
    )
    if report["fairness"]:
        columns, names, gap_rows, supported_rows = [], [], [], []
        for group_attribute in report["fairness"]:
            columns += [f"{group_attribute}: {label}" for label in ("acc", "TPR", "FPR")]
        for attribute in test.attributes:
            gaps_row, supported_row = [], []
            for entries in report["fairness"].values():
                for metric in m.GAP_SUPPORT:
                    gap = entries.get(attribute, {}).get("gaps", {}).get(metric)
                    gaps_row.append(m.NAN if gap is None else gap["gap"])
                    supported_row.append(False if gap is None else gap["supported"])
            names.append(attribute)
            gap_rows.append(gaps_row)
            supported_rows.append(supported_row)
        emit(
            "All attributes",
            "fairness_gaps",
            plots.fairness_gaps(names, columns, np.array(gap_rows), np.array(supported_rows), test.split),
        )
    if curves:
        emit(
            "Training",
            "training_curves",
            plots.training_curves(curves, "training curves, per epoch, from the run's TensorBoard logs"),
        )

    report["confident_errors"] = {}
    for attribute in plot_attributes:
        probs, labels = test.column(attribute)
        r = per[attribute]
        slug = _safe(attribute)
        counts, threshold = m.Counts(r["tp"], r["fp"], r["tn"], r["fn"]), r["threshold"]
        emit(attribute, f"confusion_{slug}", plots.confusion_matrix(counts, attribute, threshold, test.split))
        fpr, tpr, _ = m.roc_curve(probs, labels)
        points = [(f"threshold {threshold:.3g}", r["fpr"], r["tpr"])]
        if r.get("tuned", {}).get("tuned"):
            tuned = m.confusion(probs, labels, r["tuned"]["threshold"]).rates()
            points.append((f"val-tuned threshold {r['tuned']['threshold']:.3f}", tuned["fpr"], tuned["tpr"]))
        emit(attribute, f"roc_{slug}", plots.roc(fpr, tpr, r["auroc"], attribute, test.split, points))
        emit(attribute, f"reliability_{slug}", plots.reliability(r["reliability"], attribute, test.split))
        slices = {g: e[attribute]["groups"] for g, e in report["fairness"].items() if attribute in e}
        if slices:
            emit(attribute, f"fairness_{slug}", plots.fairness_bars(slices, attribute, test.split))
        found = confident_errors(test, attribute, errors, threshold)
        report["confident_errors"][attribute] = found
        if load_image is not None and test.files:
            images = [load_image(e["file"]) for e in found]
            captions = [
                f"{'FP' if e['label'] == 0 else 'FN'}: p={e['prob']:.3f}\n{Path(e['file']).name}"
                for e in found
            ]
            title = (
                f"{attribute}: the {len(found)} most confident errors ({test.split}), p = predicted probability\n"
                f"FP: predicted {attribute}, labelled not; FN: labelled {attribute}, predicted not"
            )
            emit(attribute, f"errors_{slug}", plots.error_grid(images, captions, title))
    report["figures"] = figures
    report["training_curves"] = {tag: [[e, v] for e, v in series] for tag, series in (curves or {}).items()}
    with atomic_write(out / "metrics.json") as handle:
        json.dump(_jsonable(report), handle, indent=1, allow_nan=False)
    with atomic_write(out / "report.md") as handle:
        handle.write(markdown(report))
    return report
