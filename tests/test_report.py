"""The evaluation report on a small hand-made prediction set, checked against independent numpy."""

from __future__ import annotations

import json
import math
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.functional.classification import binary_auroc, binary_calibration_error

from smile.evaluation import metrics as m
from smile.evaluation.report import (
    Predictions,
    compute_metrics,
    confident_errors,
    markdown,
    person_agreement,
    write_report,
)
from smile.evaluation.thresholds import CRITERIA, best_threshold, tune_thresholds

ATTRIBUTES = ["Smiling", "Eyeglasses", "Bald"]
# 12 test images: probabilities and labels for Smiling, Eyeglasses and Bald (no one is bald), and Male.
TEST_PROBS = np.array(
    [
        [0.95, 0.10, 0.02],
        [0.80, 0.70, 0.01],
        [0.65, 0.20, 0.03],
        [0.55, 0.90, 0.04],
        [0.45, 0.05, 0.70],
        [0.40, 0.30, 0.02],
        [0.30, 0.60, 0.01],
        [0.20, 0.15, 0.05],
        [0.12, 0.85, 0.02],
        [0.05, 0.10, 0.01],
        [0.90, 0.40, 0.03],
        [0.60, 0.55, 0.02],
    ]
)
TEST_LABELS = np.array(
    [
        [1, 0, 0],
        [1, 1, 0],
        [0, 0, 0],
        [1, 1, 0],
        [1, 0, 0],
        [0, 0, 0],
        [0, 1, 0],
        [0, 0, 0],
        [1, 1, 0],
        [0, 0, 0],
        [0, 0, 0],
        [1, 1, 0],
    ]
)
MALE = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0])
VAL_PROBS = np.array(
    [[0.9, 0.8, 0.1], [0.7, 0.3, 0.2], [0.62, 0.65, 0.05], [0.3, 0.2, 0.6], [0.2, 0.1, 0.1], [0.58, 0.7, 0.3]]
)
VAL_LABELS = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0]])


# --- independent computations (loops over images and pairs, no shared code with the report) -------


def ref_counts(p, y, t=0.5):
    tp = sum(1 for pi, yi in zip(p, y) if pi > t and yi == 1)
    fp = sum(1 for pi, yi in zip(p, y) if pi > t and yi == 0)
    tn = sum(1 for pi, yi in zip(p, y) if pi <= t and yi == 0)
    fn = sum(1 for pi, yi in zip(p, y) if pi <= t and yi == 1)
    return tp, fp, tn, fn


def ref_auroc(p, y):
    pos = [pi for pi, yi in zip(p, y) if yi == 1]
    neg = [pi for pi, yi in zip(p, y) if yi == 0]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(pos, neg))
    return wins / (len(pos) * len(neg))


def ref_ece(p, y, bins=15):
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(pi, yi) for pi, yi in zip(p, y) if lo <= pi < hi or (b == bins - 1 and pi == 1.0)]
        if members:
            conf = sum(pi for pi, _ in members) / len(members)
            freq = sum(yi for _, yi in members) / len(members)
            total += len(members) / len(p) * abs(freq - conf)
    return total


def ref_rates(p, y, t=0.5):
    tp, fp, tn, fn = ref_counts(p, y, t)
    nan = math.nan
    return {
        "acc": (tp + tn) / len(p),
        "tpr": tp / (tp + fn) if tp + fn else nan,
        "fpr": fp / (fp + tn) if fp + tn else nan,
        "balanced_acc": 0.5 * (tp / (tp + fn) + tn / (tn + fp)) if tp + fn and tn + fp else nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else nan,
    }


def close(a, b, tol=1e-9):
    if a is None or b is None:
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


@pytest.fixture
def test_set() -> Predictions:
    files = [f"img{i:02d}.jpg" for i in range(len(TEST_PROBS))]
    return Predictions(ATTRIBUTES, TEST_PROBS, TEST_LABELS, files, {"Male": MALE})


@pytest.fixture
def val_set() -> Predictions:
    return Predictions(ATTRIBUTES, VAL_PROBS, VAL_LABELS, split="val")


def test_thresholds_are_tuned_only_with_enough_validation_images_of_each_class(
    test_set: Predictions, val_set: Predictions
) -> None:
    # val: Smiling and Eyeglasses have 3 positives and 3 negatives, Bald 1 positive and 5 negatives
    report = compute_metrics(test_set, val_set, min_tune_count=2)
    rows = report["per_attribute"]
    assert rows["Smiling"]["tuned"]["tuned"] and rows["Eyeglasses"]["tuned"]["tuned"]
    bald = rows["Bald"]["tuned"]
    assert not bald["tuned"] and bald["threshold"] == 0.5 and bald["val_positives"] == 1
    assert close(bald["acc"], rows["Bald"]["acc"])
    assert report["untuned_attributes"] == ["Bald"] and report["val_split_images"] == 6
    assert "Bald keep 0.5 (fewer than 2 validation images of one class)" in markdown(report)
    assert "tuned thr. (val 6)" in markdown(report)
    # too few of a class for every attribute: no tuned figures at all, and the report says why
    report = compute_metrics(test_set, val_set, min_tune_count=4)
    assert report["threshold_criterion"] is None and "mean_acc_tuned" not in report["summary"]
    assert all("tuned" not in row for row in report["per_attribute"].values())
    assert "Thresholds not tuned: the validation split (6 images) holds fewer than 4" in markdown(report)


def test_metrics_match_an_independent_computation(test_set: Predictions, val_set: Predictions) -> None:
    report = compute_metrics(test_set, val_set, min_group_count=2, min_tune_count=1)
    for k, name in enumerate(ATTRIBUTES):
        p, y = TEST_PROBS[:, k], TEST_LABELS[:, k]
        row = report["per_attribute"][name]
        assert (row["tp"], row["fp"], row["tn"], row["fn"]) == ref_counts(p, y)
        for key, value in ref_rates(p, y).items():
            assert close(row[key], value), (name, key)
        # torchmetrics computes AUROC and ECE in float32
        assert close(row["auroc"], ref_auroc(p, y), tol=1e-6), name
        assert close(row["ece"], ref_ece(p, y), tol=1e-6), name
        assert close(row["majority_baseline"], max(y.mean(), 1 - y.mean()))
        # the tuned threshold is the best on val (by a fine brute-force sweep), and test is scored at it
        vp, vy = VAL_PROBS[:, k], VAL_LABELS[:, k]
        sweep = max(ref_rates(vp, vy, t)["acc"] for t in np.linspace(0, 1, 2001))
        tuned = row["tuned"]
        assert close(tuned["val_acc"], sweep) and close(ref_rates(vp, vy, tuned["threshold"])["acc"], sweep)
        assert close(tuned["acc"], ref_rates(p, y, tuned["threshold"])["acc"])
    accs = [ref_rates(TEST_PROBS[:, k], TEST_LABELS[:, k])["acc"] for k in range(3)]
    assert close(report["summary"]["mean_acc"], float(np.mean(accs)))
    # Bald has no positive test image: AUROC, TPR, F1 and balanced accuracy are undefined, not 0
    assert math.isnan(report["per_attribute"]["Bald"]["auroc"])
    assert close(
        report["summary"]["mean_auroc"],
        np.mean([ref_auroc(TEST_PROBS[:, k], TEST_LABELS[:, k]) for k in (0, 1)]),
        tol=1e-6,  # torchmetrics' AUROC is float32
    )

    smiling = report["fairness"]["Male"]["Smiling"]
    for name, value in (("Male", 1), ("not Male", 0)):
        mask = np.asarray(MALE) == value
        expected = ref_rates(TEST_PROBS[mask, 0], TEST_LABELS[mask, 0])
        for key in ("acc", "tpr", "fpr"):
            assert close(smiling["groups"][name][key], expected[key]), (name, key)
    for key in ("acc", "tpr", "fpr"):
        values = [smiling["groups"][g][key] for g in ("Male", "not Male")]
        assert close(smiling["gaps"][key]["gap"], abs(values[0] - values[1]))
    # the largest supported gap per metric over all attributes
    for key in ("acc", "tpr", "fpr"):
        candidates = [
            (entry["gaps"][key]["gap"], attribute)
            for attribute, entry in report["fairness"]["Male"].items()
            if entry["gaps"][key]["supported"]
        ]
        best = report["fairness_largest_gaps"][key]
        assert close(best["gap"], max(candidates)[0])


def test_numpy_metrics_agree_with_torchmetrics() -> None:
    rng = np.random.default_rng(1)
    probs, labels = rng.random(300).round(2), rng.integers(0, 2, 300)
    expected_auroc = binary_auroc(torch.tensor(probs), torch.tensor(labels)).item()
    expected_ece = binary_calibration_error(torch.tensor(probs), torch.tensor(labels), n_bins=15).item()
    assert m.auroc(probs, labels) == pytest.approx(expected_auroc, abs=1e-6)
    assert m.reliability(probs, labels, 15)["ece"] == pytest.approx(expected_ece, abs=1e-6)
    assert m.auroc(probs, labels) == pytest.approx(ref_auroc(probs, labels))


def test_confident_errors_are_the_most_confident_wrong_predictions(test_set: Predictions) -> None:
    errors = confident_errors(test_set, "Smiling", count=3)
    wrong = [
        (abs(p - y), i) for i, (p, y) in enumerate(zip(TEST_PROBS[:, 0], TEST_LABELS[:, 0])) if (p > 0.5) != y
    ]
    assert [e["index"] for e in errors] == [i for _, i in sorted(wrong, reverse=True)[:3]]
    assert errors[0] == {
        "attribute": "Smiling",
        "index": 10,
        "file": "img10.jpg",
        "label": 0,
        "prob": 0.9,
        "kind": "false positive",
    }


def test_report_folder_holds_the_numbers_and_the_figures(
    test_set: Predictions, val_set: Predictions, tmp_path: Path
) -> None:
    logged = []
    curves = {
        "train/loss": [(1, 0.7), (2, 0.5)],
        "val/loss": [(1, 0.65), (2, 0.6)],
        "val/acc": [(1, 0.7), (2, 0.8)],
    }
    write_report(
        tmp_path,
        test_set,
        val_set,
        plot_attributes=["Smiling"],
        curves=curves,
        load_image=lambda file: np.full((218, 178, 3), 128, np.uint8),
        errors=4,
        source={"checkpoint": "hand-made"},
        on_figure=lambda name, path: logged.append(name),
        min_group_count=2,
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["attributes"] == ATTRIBUTES
    assert saved["per_attribute"]["Bald"]["auroc"] is None  # NaN is written as null
    for k, name in enumerate(ATTRIBUTES):
        p, y = TEST_PROBS[:, k], TEST_LABELS[:, k]
        row = saved["per_attribute"][name]
        for key, value in ref_rates(p, y).items():
            assert close(row[key], value), (name, key)
        assert close(row["ece"], ref_ece(p, y))
    assert saved["training_curves"]["val/acc"] == [[1, 0.7], [2, 0.8]]
    assert [e["index"] for e in saved["confident_errors"]["Smiling"]][:1] == [10]

    expected_pngs = {"summary", "fairness_gaps", "training_curves"} | {
        f"{kind}_{name}"
        for kind in ("confusion", "roc", "reliability", "fairness", "errors")
        for name in ("Smiling",)
    }
    assert {path.stem for path in tmp_path.glob("*.png")} == expected_pngs
    assert set(logged) == expected_pngs
    for path in tmp_path.glob("*.png"):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"

    text = (tmp_path / "report.md").read_text()
    accuracy = {
        name: ref_rates(TEST_PROBS[:, k], TEST_LABELS[:, k])["acc"] for k, name in enumerate(ATTRIBUTES)
    }
    table = [
        line for line in text.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in ATTRIBUTES
    ]
    rows = [line.split(" | ") for line in table[: len(ATTRIBUTES)]]
    assert [row[0][2:] for row in rows] == sorted(ATTRIBUTES, key=lambda a: -accuracy[a])
    assert [float(row[1]) for row in rows] == [round(accuracy[row[0][2:]], 4) for row in rows]
    assert f"| mean accuracy over 3 attributes | {np.mean(list(accuracy.values())):.4f} |" in text
    assert "### By Male" in text and "![roc_Smiling](roc_Smiling.png)" in text


def test_markdown_without_val_or_groups(test_set: Predictions) -> None:
    bare = Predictions(ATTRIBUTES, TEST_PROBS, TEST_LABELS)
    text = markdown(compute_metrics(bare))
    assert "tuned" not in text and "Fairness" not in text
    assert "mean accuracy over 3 attributes" in text


def test_predictions_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="must be"):
        Predictions(["Smiling"], TEST_PROBS, TEST_LABELS)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_best_threshold_beats_every_other_threshold(criterion: str) -> None:
    rng = np.random.default_rng(3)
    probs, labels = rng.random(60).round(2), rng.integers(0, 2, 60)
    threshold, score = best_threshold(probs, labels, criterion)
    key = {"acc": "acc", "balanced_acc": "balanced_acc", "f1": "f1"}[criterion]
    sweep = [ref_rates(probs, labels, t)[key] for t in np.linspace(0, 1, 1001)]
    assert score == pytest.approx(max(sweep))
    assert ref_rates(probs, labels, threshold)[key] == pytest.approx(score)


def test_per_attribute_thresholds_decide_and_the_figures_at_one_half_stay_beside_them(
    test_set: Predictions,
) -> None:
    cuts = [0.5, 0.35, 0.04]  # Eyeglasses and Bald with lower thresholds of their own
    report = compute_metrics(test_set, threshold=cuts, threshold_source="the model's")
    rows = report["per_attribute"]
    assert report["threshold"] is None and report["thresholds"] == dict(zip(ATTRIBUTES, cuts))
    for k, name in enumerate(ATTRIBUTES):
        assert close(rows[name]["acc"], ref_rates(TEST_PROBS[:, k], TEST_LABELS[:, k], cuts[k])["acc"])
        assert rows[name]["threshold"] == cuts[k]
    assert "at_default" not in rows["Smiling"]
    assert close(
        rows["Eyeglasses"]["at_default"]["acc"], ref_rates(TEST_PROBS[:, 1], TEST_LABELS[:, 1], 0.5)["acc"]
    )
    half = compute_metrics(test_set)
    assert close(report["summary"]["mean_acc_at_default"], half["summary"]["mean_acc"])
    assert close(report["summary"]["mean_balanced_acc_at_default"], half["summary"]["mean_balanced_acc"])
    text = markdown(report)
    assert "exceeds each attribute's own threshold (the model's)" in text
    assert "mean accuracy at threshold 0.5" in text
    with pytest.raises(ValueError, match="2 thresholds for 3 attributes"):
        compute_metrics(test_set, threshold=[0.5, 0.5])


def test_tune_thresholds_per_column_keeps_the_default_without_enough_images() -> None:
    chosen, tuned = tune_thresholds(VAL_PROBS, VAL_LABELS, "acc", min_count=2)
    assert tuned.tolist() == [True, True, False] and chosen[2] == 0.5
    for k in (0, 1):
        assert chosen[k] == best_threshold(VAL_PROBS[:, k], VAL_LABELS[:, k], "acc")[0]


def test_person_agreement_counts_pairs_of_one_persons_images() -> None:
    # person 1: labels 1, 1, 0 (3 pairs, 1 agrees); person 2: 0, 0 (1 pair, agrees); person 3: one image;
    # an image of an unknown person (-1) adds no pair
    labels = np.array([1, 1, 0, 0, 0, 1, 1])
    people = np.array([1, 1, 1, 2, 2, 3, -1])
    result = person_agreement(labels, people)
    assert result["pairs"] == 4 and result["people"] == 2
    assert close(result["agreement"], 2 / 4)
    prevalence = 3 / 6
    assert close(result["chance"], prevalence**2 + (1 - prevalence) ** 2)
    # the ceiling 1 - e solves agreement = (1 - e)^2 + e^2: e = 0.5 at agreement 0.5, e = 0 at 1
    assert close(result["ceiling"], 0.5)
    steady = person_agreement(np.array([1, 1, 0, 0]), np.array([1, 1, 2, 2]))
    assert close(steady["agreement"], 1.0) and close(steady["ceiling"], 1.0)
    labels = np.array([1, 0] * 50)
    assert math.isnan(person_agreement(labels, np.arange(100))["agreement"])  # no person twice


def test_the_report_gives_same_person_agreement_for_the_noisy_labels(test_set: Predictions) -> None:
    people = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
    with_people = Predictions(ATTRIBUTES, TEST_PROBS, TEST_LABELS, split="test", identities=people)
    report = compute_metrics(with_people)
    row = report["per_attribute"]["Smiling"]["person_agreement"]
    assert row == person_agreement(TEST_LABELS[:, 0], people)
    text = markdown(report)
    assert "same-person agreement" in text and "## Noisy labels" in text
    noisy = Predictions(["Oval_Face"], TEST_PROBS[:, :1], TEST_LABELS[:, :1], split="test", identities=people)
    assert "| Oval_Face |" in markdown(compute_metrics(noisy)).split("## Noisy labels")[1]
