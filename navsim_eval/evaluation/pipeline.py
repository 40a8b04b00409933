"""One evaluation run from a config: sources -> runner -> summary tables -> two-stage -> visual report.

Models are built by the caller (``launch/evaluate.py``) and passed in as planners: this package knows
nothing of the model code (layering: navsim_eval -> data_pipelines only).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from data_pipelines.configuration import FiniteFloat, NonNegativeInt, PositiveInt
from data_pipelines.paths import DataPaths
from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import Split, load_split
from data_pipelines.scene_loader import SceneLoader
from navsim_eval.evaluation.distributed import Distributed
from navsim_eval.evaluation.errors import EvaluationError
from navsim_eval.evaluation.metrics import METRIC_VERSIONS, SCORE, SCORE_NAME, TABLE_LAYOUT
from navsim_eval.evaluation.planners import MODEL_FREE_PLANNERS, CandidatePlanner
from navsim_eval.evaluation.report import plot_omega_sweep, select_tokens, token_scores, write_visual_report
from navsim_eval.evaluation.runner import RunSettings, run_evaluation
from navsim_eval.evaluation.scorers import NativeScorer, TrajectoryScorer
from navsim_eval.evaluation.sources import LoaderSource, TokenSubset, TwoStageSource
from navsim_eval.evaluation.summary import markdown_table, summarize, two_stage_markdown
from navsim_eval.evaluation.two_stage import TwoStageGroup, aggregate_two_stage

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.md"
TWO_STAGE_FILE = "two_stage.csv"
SELECTED_OMEGA_FILE = "selected_omega.json"
CONFIG_FILE = "evaluation_config.json"
REPORT_DIR = "report"
TWO_STAGE_SUFFIX = "_two_stage"
"""Two-stage data of split S lives in ``<data root>/S_two_stage`` (the synthetic layout)."""
BASELINES = tuple(MODEL_FREE_PLANNERS) + ("il",)
"""What ``EvaluationConfig.baselines`` may name: the model-free planners and the IL checkpoint."""


@dataclass
class EvaluationConfig:
    """Everything one ``launch/evaluate.py`` run needs (paths default to the NAVSIM environment variables)."""

    split: str = "synthetic_test"  # split name under <data_root>/splits, or a split YAML path (e.g. navtest)
    data_root: Optional[str] = None  # dataset root; None: $OPENSCENE_DATA_ROOT
    maps_root: Optional[str] = None  # map root; None: $NUPLAN_MAPS_ROOT, else <data_root>/maps
    checkpoint: Optional[str] = None  # DipoleVLA.from_pretrained folder or hub id; None: baselines only
    il_checkpoint: Optional[str] = None  # IL-only checkpoint of the 'il' baseline; None: checkpoint
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # model weights; auto: as stored
    omegas: tuple[FiniteFloat, ...] = (1.0,)  # guidance strengths (dipole.md §4: the released DP-VLA default is 1)
    num_steps: Optional[PositiveInt] = None  # denoising steps; None: the checkpoint's sampler default
    num_samples: PositiveInt = 1  # trajectories per scene, omega and seed
    seeds: tuple[NonNegativeInt, ...] = (0,)  # sampling seeds (each scene's noise comes from (seed, token))
    metrics: tuple[str, ...] = ("v1", "v2")  # v1 (PDMS) and/or v2 (EPDMS)
    baselines: tuple[str, ...] = ("constant_velocity", "human")
    """some of standing_still, constant_velocity, constant_turn_rate, human, il"""
    batch_size: PositiveInt = 4  # scenes per model forward
    num_workers: NonNegativeInt = 0  # per rank: DataLoader worker processes reading + decoding camera images; 0: none
    cpu_threads: Optional[PositiveInt] = None  # torch threads of a CPU model process; None: its CPUs / processes per machine
    output_dir: str = "outputs/evaluation"  # results.csv, summary.md, two_stage.csv, report/
    metric_cache_dir: Optional[str] = None  # metric caches per version (<dir>/v1, <dir>/v2); None: build them
    two_stage: Literal["auto", "on", "off"] = "auto"  # two-stage aggregation; auto: when the split has stage-2 data
    two_stage_root: Optional[str] = None  # two-stage data folder; None: <data_root>/<split>_two_stage
    max_scenes: Optional[NonNegativeInt] = None  # evaluate only the first N scenes
    report_worst: NonNegativeInt = 3  # BEV plots of the N worst-scored scenes
    report_sample: NonNegativeInt = 3  # BEV plots of N random scenes
    progress: bool = True  # progress bar
    select_omega: bool = False  # write the model planner's best omega (stage 1, first metric) to selected_omega.json

    def __post_init__(self) -> None:
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            raise EvaluationError(f"unknown baseline(s) {sorted(unknown)}; expected some of {BASELINES}")
        if self.two_stage not in ("auto", "on", "off"):
            raise EvaluationError(f"two_stage must be auto, on or off, got {self.two_stage!r}")
        if self.num_samples < 1 or self.batch_size < 1:
            raise EvaluationError("num_samples and batch_size must be >= 1")
        unknown_metrics = [m for m in self.metrics if m not in METRIC_VERSIONS]
        if unknown_metrics or not self.metrics:
            raise EvaluationError(f"metrics must be some of {METRIC_VERSIONS}, got {list(self.metrics)}")


@dataclass
class EvaluationOutputs:
    results_csv: Path
    summary_md: Path
    summary_text: str
    rows: list[dict[str, Any]]
    two_stage_csv: Optional[Path] = None
    report_files: list[Path] = field(default_factory=list)


def data_paths_of(config: EvaluationConfig) -> DataPaths:
    return DataPaths.from_env(config.data_root, config.maps_root)


def resolve_split(config: EvaluationConfig, data_paths: DataPaths) -> Split:
    """A split YAML path, or a split name looked up in ``<data root>/splits/<name>.yaml``."""
    candidate = Path(config.split)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return load_split(candidate)
    path = data_paths.splits_dir() / f"{config.split}.yaml"
    if not path.exists():
        raise EvaluationError(f"split {config.split!r}: no file {path} (pass a split YAML path or a data root)")
    return load_split(path)


def map_provider_of(data_paths: DataPaths):
    from data_pipelines.maps import load_map

    maps_root = data_paths.require_maps_root()
    return lambda location: load_map(maps_root, location, data_paths.map_version)


def build_sources(config: EvaluationConfig, sensor_config: Optional[SensorConfig] = None,
                  distributed: Optional[Distributed] = None) -> list[Any]:
    """Stage-1 source of the split (``max_scenes``, see :func:`_first_scenes`) plus the stage-2 source when
    two-stage data exists.

    With several ranks (``distributed``; every rank calls this) each rank reads only its own shard of the
    split's logs, and ``max_scenes`` is shared out (ceil(max_scenes / ranks) per rank); the stage-2 data, a
    small folder, is read whole by every rank."""
    dist = distributed or Distributed()
    data_paths = data_paths_of(config)
    split = resolve_split(config, data_paths)
    sensor_config = sensor_config or SensorConfig.front_three_current(split.scene_filter.num_history_frames)
    maps = map_provider_of(data_paths)
    sharded = dist.world_size > 1
    loader = SceneLoader.from_split(split, data_paths, sensor_config, map_provider=maps,
                                    record_unreadable_logs=True,
                                    shard=(dist.rank, dist.world_size) if sharded else None)
    first: Any = LoaderSource(loader, maps)
    # A two-stage split's stage-2 data is the folder named like the split (navhard_two_stage/); a one-stage split
    # may have its stage-2 scenes beside it in <split>_two_stage/.
    root = Path(config.two_stage_root) if config.two_stage_root else data_paths.require_data_root() / (
        split.name if split.is_two_stage else f"{split.name}{TWO_STAGE_SUFFIX}")
    two_stage_data = None
    if config.two_stage == "on" or (config.two_stage == "auto" and (split.is_two_stage or root.is_dir())):
        from data_pipelines.two_stage import load_two_stage, missing_first_stage_tokens

        if not root.is_dir():
            raise EvaluationError(
                f"split {split.name!r} needs stage-2 data (two_stage={config.two_stage}"
                f"{', include_synthetic_scenes' if split.is_two_stage else ''}), but {root} does not exist; pass "
                f"two_stage_root, or two_stage=off to score stage 1 only")
        two_stage_data = load_two_stage(root, split)
        missing = missing_first_stage_tokens(two_stage_data, dist.gather(loader.tokens) if sharded else loader.tokens)
        if missing:
            logger.warning("%d stage-1 scene(s) linked to stage-2 scenes are not in split %s, e.g. %s; their groups "
                           "are reported without a stage-1 result", len(missing), split.name, missing[:3])
    if config.max_scenes is not None:
        keep = _first_scenes(first.tokens, two_stage_data, -(-config.max_scenes // dist.world_size))
        first = TokenSubset(first, [t for t in first.tokens if t in keep])
    sources = [first]
    if two_stage_data is not None:
        linked = None  # None: every linked stage-1 scene
        if config.max_scenes is not None:
            linked = dist.gather(first.tokens) if sharded else first.tokens
        sources.append(TwoStageSource(two_stage_data, sensor_config, maps, linked))
    return sources


def _first_scenes(tokens: Sequence[str], two_stage_data: Any, count: int) -> set[str]:
    """The stage-1 scenes a ``max_scenes`` run keeps: with two-stage data the scenes that have stage-2 scenes
    come first, a linked scene together with its previous frame (their extended comfort pairs them), so the
    last link taken may add one scene beyond ``count``."""
    if two_stage_data is None:
        return set(tokens[:count])
    present = set(tokens)
    linked = set(two_stage_data.first_stage_tokens)
    units: list[list[str]] = []
    placed: set[str] = set()
    for link in two_stage_data.links:
        unit = [t for t in (link.previous_token, link.first_stage_token) if t in present and t not in placed]
        placed.update(unit)
        if unit:
            units.append(unit)
    units += [[t] for t in tokens if t in linked and t not in placed]
    units += [[t] for t in tokens if t not in linked and t not in placed]
    keep: set[str] = set()
    for unit in units:
        if len(keep) >= count:
            break
        keep.update(unit)
    return keep


def default_planners(config: EvaluationConfig) -> list[CandidatePlanner]:
    """The model-free baselines named in the config (the model planners come from the caller)."""
    return [MODEL_FREE_PLANNERS[name]() for name in BASELINES
            if name in config.baselines and name in MODEL_FREE_PLANNERS]


def _two_stage_groups(source: TwoStageSource) -> list[TwoStageGroup]:
    """One group per link of the evaluated stage-1 scenes, the previous frame's half averaged in when the link
    names one (navsim@main ``calculate_individual_mapping_scores``); a stage-1 scene in no such link (links
    read from the attributes CSV) is a group of its own."""
    kept = set(source.first_stage_tokens)
    groups, grouped = [], set()
    for link in source.links:
        if link.first_stage_token not in kept or link.first_stage_token in grouped:
            continue
        previous = link.previous_token if link.previous_token in kept and link.previous_second_stage_tokens else None
        groups.append(TwoStageGroup(link.first_stage_token, tuple(link.second_stage_tokens), previous,
                                    tuple(link.previous_second_stage_tokens) if previous else ()))
        grouped.update(t for t in (link.first_stage_token, previous) if t is not None)
    return groups + [TwoStageGroup(first, tuple(source.second_stage_of(first)))
                     for first in source.first_stage_tokens if first not in grouped]


def _write_dict_rows(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    columns = list(rows[0]) if rows else []
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return path


def run_pipeline(
    config: EvaluationConfig,
    planners: Sequence[CandidatePlanner],
    *,
    sources: Optional[Sequence[Any]] = None,
    scorer: Optional[TrajectoryScorer] = None,
    distributed: Optional[Distributed] = None,
    model_planner_names: Sequence[str] = ("dipole",),
) -> EvaluationOutputs:
    """Evaluate, then (rank 0) write summary.md, two_stage.csv and the visual report under output_dir."""
    dist = distributed or Distributed()
    out_dir = Path(config.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = list(sources) if sources is not None else build_sources(config)
    scorer = scorer or NativeScorer(config.metric_cache_dir)
    settings = RunSettings(metrics=tuple(config.metrics), batch_size=config.batch_size, show_progress=config.progress,
                           num_workers=config.num_workers)
    rows = run_evaluation(sources, planners, scorer, out_dir / RESULTS_FILE, settings, dist)
    outputs = EvaluationOutputs(out_dir / RESULTS_FILE, out_dir / SUMMARY_FILE, "", rows)
    if not dist.is_main:
        return outputs
    (out_dir / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2, default=str))
    sections = [f"# Evaluation on {config.split}", ""]
    for metric in config.metrics:
        sections += [markdown_table(summarize(rows, metric, stage=1), metric,
                                    title=f"{metric} on {config.split} (stage 1, one-stage)"), ""]
    two_stage_sources = [s for s in sources if isinstance(s, TwoStageSource)]
    if two_stage_sources:
        groups = [g for s in two_stage_sources for g in _two_stage_groups(s)]
        group_rows = []
        for metric in config.metrics:
            sections += [markdown_table(summarize(rows, metric, stage=2), metric,
                                        title=f"{metric} on the stage-2 scenes (unweighted)"), ""]
            summaries = aggregate_two_stage([r for r in rows if r["metric"] == metric], groups)
            sections += [two_stage_markdown(summaries, metric), ""]
            group_rows += [g.as_row() for s in summaries for g in s.groups]
        outputs.two_stage_csv = _write_dict_rows(out_dir / TWO_STAGE_FILE, group_rows)
    if config.select_omega:
        sections += [write_selected_omega(out_dir / SELECTED_OMEGA_FILE, rows, config.metrics[0], model_planner_names),
                     ""]
    failures = sorted({(r["token"], r["error"]) for r in rows if r.get("error")})
    if failures:
        sections += [f"### Failed tokens ({len({t for t, _ in failures})})", ""]
        sections += [f"- `{token}`: {reason}" for token, reason in failures[:50]]
        sections.append("")
    outputs.summary_text = "\n".join(sections)
    outputs.summary_md.write_text(outputs.summary_text)
    report_metric = config.metrics[0]
    if config.report_worst or config.report_sample:
        rank_planner = next((p.name for p in planners if p.name in model_planner_names), None)
        report_source = sources[0]
        if getattr(report_source, "shard", None) is not None:  # rank 0 holds only its shard: read the scenes shown
            report_source = _report_source(config, rows, report_metric, rank_planner)
        outputs.report_files = write_visual_report(
            rows, report_source, out_dir / REPORT_DIR, report_metric, num_worst=config.report_worst,
            num_sample=config.report_sample, model_planners=model_planner_names, rank_planner=rank_planner)
        for metric in config.metrics[1:]:
            extra = plot_omega_sweep(rows, metric, out_dir / REPORT_DIR / f"omega_sweep_{metric}.png",
                                     model_planner_names)
            if extra is not None:
                outputs.report_files.append(extra)
    return outputs


def _report_source(config: EvaluationConfig, rows: Sequence[dict[str, Any]], metric: str,
                   rank_planner: Optional[str]) -> LoaderSource:
    """A source of just the stage-1 scenes the visual report shows, read from their logs only."""
    shown = [token for _, token in select_tokens(token_scores(rows, metric, rank_planner), config.report_worst,
                                                 config.report_sample)]
    logs = sorted({r["log_name"] for r in rows if r["token"] in shown and int(r["stage"]) == 1 and r["log_name"]})
    data_paths = data_paths_of(config)
    split = resolve_split(config, data_paths)
    scene_filter = replace(split.scene_filter, log_names=logs, tokens=shown, max_scenes=None)
    maps = map_provider_of(data_paths)
    return LoaderSource(SceneLoader.from_split(replace(split, scene_filter=scene_filter), data_paths,
                                               map_provider=maps, record_unreadable_logs=True), maps)


def table_results(rows: Sequence[dict[str, Any]], metric: str, stage: int = 1) -> dict[str, dict[str, float]]:
    """{row label: {table header: mean}} of one metric version (fractions, the columns of the summary table)."""
    return {
        line.label: {**{header: line.means.get(column, math.nan) for header, column in TABLE_LAYOUT[metric]},
                     "scenes_failed": float(line.num_failed)}
        for line in summarize(rows, metric, stage=stage)
    }


def select_omega(rows: Sequence[dict[str, Any]], metric: str, planners: Sequence[str] = ("dipole",),
                 stage: int = 1) -> tuple[str, float, float]:
    """(planner, omega, mean score) of the guided variant with the best mean score; ties: the smaller omega."""
    candidates = [line for line in summarize(rows, metric, stage=stage)
                  if line.planner in planners and line.omega is not None and not math.isnan(line.means[SCORE])]
    if not candidates:
        raise EvaluationError(f"no scored omega of planner(s) {list(planners)} to select from ({metric})")
    best = max(candidates, key=lambda line: (line.means[SCORE], -line.omega))
    return best.planner, float(best.omega), float(best.means[SCORE])


def write_selected_omega(path: Path, rows: Sequence[dict[str, Any]], metric: str,
                         planners: Sequence[str] = ("dipole",)) -> str:
    """Write the selected omega as JSON; returns the summary line."""
    planner, omega, score = select_omega(rows, metric, planners)
    path.write_text(json.dumps({"planner": planner, "omega": omega, "metric": metric, SCORE_NAME[metric]: score},
                               indent=2) + "\n")
    return f"Selected omega ({planner}, best {SCORE_NAME[metric]}): {omega:g} ({100 * score:.1f})"
