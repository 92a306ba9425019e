"""The README's per-attribute table from evaluation reports: for each attribute, the majority-class
baseline and each model's accuracy and balanced accuracy (at 0.5, and at the model's own thresholds
where it has them), and the labels' same-person agreement.

Usage::

    python benchmarks/attribute_table.py --report recipe=RUN/report/metrics.json \\
        --report notebook=RUN2/report/metrics.json [--sort recipe]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def columns(name: str, report: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and, per attribute, the cells of one model: accuracy and balanced accuracy at 0.5,
    and at its own thresholds when they differ from 0.5."""
    own = report.get("threshold") is None
    header = [f"{name} acc", f"{name} bal. acc"]
    if own:
        header += [f"{name} acc (own thr.)", f"{name} bal. acc (own thr.)"]
    cells = {}
    for attribute, row in report["per_attribute"].items():
        at_half = row.get("at_default", row)
        cells[attribute] = [_pct(at_half["acc"]), _pct(at_half["balanced_acc"])]
        if own:
            cells[attribute] += [_pct(row["acc"]), _pct(row["balanced_acc"])]
    return header, cells


def table(reports: dict[str, dict[str, Any]], sort: str | None = None) -> str:
    """A markdown table, one row per attribute (sorted by ``sort``'s accuracy at 0.5, lowest first), and
    a last row of means."""
    first = next(iter(reports.values()))
    attributes = list(first["per_attribute"])
    header = ["attribute", "positives", "majority"]
    model_cells = {}
    for name, report in reports.items():
        cells_header, model_cells[name] = columns(name, report)
        header += cells_header
    agreement = all("person_agreement" in row for row in first["per_attribute"].values())
    if agreement:
        header.append("same-person agreement")
    if sort:
        acc = {a: report_acc(reports[sort]["per_attribute"][a]) for a in attributes}
        attributes.sort(key=lambda a: acc[a])
    lines = ["| " + " | ".join(header) + " |", "| :--- |" + " ---: |" * (len(header) - 1)]
    for attribute in attributes:
        row = first["per_attribute"][attribute]
        cells = [attribute, f"{100 * row['prevalence']:.1f}%", _pct(row["majority_baseline"])]
        for name in reports:
            cells += model_cells[name][attribute]
        if agreement:
            cells.append(_pct(row["person_agreement"]["agreement"]))
        lines.append("| " + " | ".join(cells) + " |")
    means = ["**mean**", "", _pct(first["summary"]["mean_majority_baseline"])]
    for report in reports.values():
        summary = report["summary"]
        means += [
            _pct(summary.get("mean_acc_at_default", summary["mean_acc"])),
            _pct(summary.get("mean_balanced_acc_at_default", summary["mean_balanced_acc"])),
        ]
        if report.get("threshold") is None:
            means += [_pct(summary["mean_acc"]), _pct(summary["mean_balanced_acc"])]
    if agreement:
        means.append("")
    lines.append("| " + " | ".join(means) + " |")
    return "\n".join(lines)


def report_acc(row: dict[str, Any]) -> float:
    return row.get("at_default", row)["acc"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="append", required=True, help="NAME=metrics.json (repeatable)")
    parser.add_argument("--sort", help="sort by this model's accuracy at 0.5, lowest first")
    args = parser.parse_args(argv)
    reports = {}
    for item in args.report:
        name, _, path = item.partition("=")
        reports[name] = json.loads(Path(path).read_text())
    print(table(reports, args.sort))
    return 0


if __name__ == "__main__":
    sys.exit(main())
