"""Summary tables in the layout papers use (navsim_data.md §10): means over scenes, in percent.

One line per (stage, planner, omega); means run over tokens, seeds and samples (NaN-skipping, as the
devkit's averages). With several seeds the score column also shows the spread of the per-seed means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from navsim_eval.evaluation.metrics import ALL_METRIC_COLUMNS, SCORE, SCORE_NAME, TABLE_LAYOUT
from navsim_eval.evaluation.results import format_omega

PERCENT = 100.0
"""Tables print metrics in percent, as the papers do."""


@dataclass
class SummaryLine:
    stage: int
    planner: str
    omega: Optional[float]
    metric: str
    means: dict[str, float]
    num_tokens: int
    num_failed: int
    seed_scores: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.planner if self.omega is None else f"{self.planner} (w={format_omega(self.omega)})"


def _nanmean(values: Sequence[float]) -> float:
    array = np.asarray(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    return float(array.mean()) if array.size else math.nan


def summarize(rows: Iterable[dict[str, Any]], metric: str, stage: Optional[int] = None) -> list[SummaryLine]:
    """Per (stage, planner, omega) means of every metric column over the rows of one metric version."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row["metric"] != metric or (stage is not None and int(row["stage"]) != stage):
            continue
        omega = row.get("omega")
        omega = None if omega is None or (isinstance(omega, float) and math.isnan(omega)) else float(omega)
        groups.setdefault((int(row["stage"]), row["planner"], omega), []).append(row)
    lines = []
    for (stage_, planner, omega), members in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], -math.inf if item[0][2] is None else item[0][2])
    ):
        valid = [r for r in members if not r.get("error")]
        failed_tokens = {r["token"] for r in members if r.get("error")}
        means = {c: _nanmean([r[c] for r in valid]) for c in ALL_METRIC_COLUMNS}
        seeds = sorted({int(r["seed"]) for r in valid})
        seed_scores = [_nanmean([r[SCORE] for r in valid if int(r["seed"]) == s]) for s in seeds]
        lines.append(SummaryLine(stage_, planner, omega, metric, means, len({r["token"] for r in members}),
                                 len(failed_tokens), seed_scores))
    return lines


def _cell(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{PERCENT * value:.1f}"


def markdown_table(lines: Sequence[SummaryLine], metric: str, title: Optional[str] = None) -> str:
    """A markdown table: Method | NC | DAC | ... | PDMS (or EPDMS) | scenes | failed."""
    layout = TABLE_LAYOUT[metric]
    header = ["Method"] + [name for name, _ in layout] + ["scenes", "failed"]
    out = [f"### {title}", ""] if title else []
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for line in lines:
        cells = [line.label]
        for _, column in layout:
            cell = _cell(line.means.get(column, math.nan))
            if column == SCORE and len(line.seed_scores) > 1:
                cell += f" ± {PERCENT * float(np.std(line.seed_scores)):.1f} ({len(line.seed_scores)} seeds)"
            cells.append(cell)
        cells += [str(line.num_tokens), str(line.num_failed)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def two_stage_markdown(summaries: Sequence[Any], metric: str) -> str:
    """Two-stage (pseudo closed-loop) table: stage-1 mean, weighted stage-2 mean, combined score."""
    name = SCORE_NAME[metric]
    out = [f"### Two-stage {name} ({metric}, pseudo closed loop)", "",
           f"| Method | stage 1 {name} | stage 2 {name} (weighted) | two-stage {name} | scenes | valid |",
           "|---|---:|---:|---:|---:|---:|"]
    by_label: dict[str, list[Any]] = {}
    for summary in summaries:
        if summary.metric != metric:
            continue
        v = summary.variant
        label = v.planner if v.omega is None else f"{v.planner} (w={format_omega(v.omega)})"
        by_label.setdefault(label, []).append(summary)
    for label, members in by_label.items():  # average over seeds and samples
        one, two, combined = (_nanmean([getattr(s, part)[SCORE] for s in members])
                              for part in ("stage_one", "stage_two", "combined"))
        out.append(f"| {label} | {_cell(one)} | {_cell(two)} | {_cell(combined)} | {members[0].num_groups} | "
                   f"{min(s.num_valid_groups for s in members)} |")
    return "\n".join(out)
