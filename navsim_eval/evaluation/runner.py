"""Run planners on every scene of a split, score every candidate, write the per-token CSV.

Per batch of tokens: agent inputs -> each planner's variants (B, 8, 3) -> per token all variants scored in
one call per metric version -> one row per (token, stage, variant, metric). Failures (unreadable scene,
planner or scorer error) become rows with the reason in ``error``; the run goes on. Rows are appended to a
per-rank partial file after every batch (one synced write per batch); at the end rank 0 merges everything into
the results CSV. A rerun skips every key already scored without error (resume after a crash or with more
omegas/planners); a last row that a crash left incomplete is discarded, with a warning, and scored again. Each
rank holds a lock on its results while it runs: a second run into the same output folder is refused.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from data_pipelines.geometry import relative_to_absolute_poses
from navsim_eval.evaluation.distributed import Distributed
from navsim_eval.evaluation.extended_comfort import apply_extended_comfort, known_poses, previous_tokens
from navsim_eval.evaluation.metrics import check_version
from navsim_eval.evaluation.planners import CandidatePlanner, PlanningBatch
from navsim_eval.evaluation.results import (
    Variant,
    append_rows,
    completed_keys,
    make_row,
    merge_rows,
    read_rows,
    results_lock,
    row_key,
    write_rows,
)
from navsim_eval.evaluation.scorers import TrajectoryScorer
from navsim_eval.evaluation.sources import SceneSource
from navsim_eval.pdm.scene_pairs import ComfortPairs, two_stage_pairs

PathLike = Union[str, Path]
logger = logging.getLogger(__name__)

EXTENDED_COMFORT_METRIC = "v2"
"""Only EPDMS has the two-frame extended comfort."""


@dataclass
class RunSettings:
    metrics: tuple[str, ...] = ("v1",)
    batch_size: int = 4
    show_progress: bool = True
    num_workers: int = 0  # DataLoader worker processes that read and decode the agent inputs; 0: this process


@dataclass
class LoadedToken:
    """A token's log name and agent input, or why they could not be loaded."""

    token: str
    log_name: str = ""
    agent_input: Any = None
    error: str = ""


class AgentInputBatches(torch.utils.data.Dataset):
    """Batch i of tokens -> their LoadedTokens: with DataLoader workers, the sensors (camera JPEGs) are read and
    decoded off the evaluating process, a few batches ahead."""

    def __init__(self, source: SceneSource, batches: Sequence[Sequence[str]]):
        self.source = source
        self.batches = [list(b) for b in batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> list[LoadedToken]:
        loaded = []
        for token in self.batches[index]:
            item = LoadedToken(token)
            try:
                item.log_name = self.source.log_name(token)
                item.agent_input = self.source.agent_input(token)
            except Exception as error:  # noqa: BLE001 - recorded as the token's error rows
                item.error = _reason(error)
            loaded.append(item)
        return loaded


def _unchanged(item: Any) -> Any:
    return item


def load_batches(source: SceneSource, batches: Sequence[Sequence[str]], num_workers: int) -> Iterator[list]:
    """The LoadedTokens of each batch, in order, read by ``num_workers`` processes (0: here, on demand)."""
    dataset = AgentInputBatches(source, batches)
    if num_workers == 0 or not batches:
        return (dataset[i] for i in range(len(dataset)))
    return iter(DataLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers,
                           collate_fn=_unchanged, generator=torch.Generator().manual_seed(0)))


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def partial_path(results_csv: Path, rank: int) -> Path:
    return results_csv.with_name(f".{results_csv.stem}.rank{rank}.partial.csv")


def _partial_files(results_csv: Path) -> list[Path]:
    return sorted(results_csv.parent.glob(f".{results_csv.stem}.rank*.partial.csv"))


class _BatchEvaluator:
    def __init__(self, source: SceneSource, planners: Sequence[CandidatePlanner], scorer: TrajectoryScorer,
                 metrics: Sequence[str]):
        self.source, self.planners, self.scorer, self.metrics = source, planners, scorer, list(metrics)
        self.needs_scene_for_planning = any(p.needs_scene for p in planners)
        self.keep_states = EXTENDED_COMFORT_METRIC in self.metrics and hasattr(scorer, "score_with_states")
        self.states: dict[tuple[str, Variant], np.ndarray] = {}

    def _error_rows(self, token: str, variants: Sequence[Variant], reason: str, log_name: str = "") -> list[dict]:
        return [make_row(token, v, m, stage=self.source.stage, log_name=log_name, error=reason)
                for v in variants for m in self.metrics]

    def _plan(self, planner: CandidatePlanner, batch: PlanningBatch) -> dict[str, dict[Variant, np.ndarray]]:
        """{token: {variant: (8, 3)}}; a failing batch is retried token by token to isolate the culprit."""
        def split(result: dict[Variant, np.ndarray], tokens: list[str]) -> dict[str, dict[Variant, np.ndarray]]:
            return {t: {v: np.asarray(p[i]) for v, p in result.items()} for i, t in enumerate(tokens)}

        try:
            return split(planner.plan(batch), batch.tokens)
        except Exception as batch_error:  # noqa: BLE001 - isolate the failing token(s)
            if len(batch.tokens) == 1:
                raise batch_error
            out = {}
            for i, token in enumerate(batch.tokens):
                single = PlanningBatch([token], [batch.agent_inputs[i]], [batch.scenes[i]] if batch.scenes else None)
                try:
                    out.update(split(planner.plan(single), [token]))
                except Exception as error:  # noqa: BLE001
                    out[token] = error
            return out

    def evaluate(self, loaded: list[LoadedToken]) -> list[dict[str, Any]]:
        """Rows of one batch of tokens whose agent inputs :func:`load_batches` read."""
        rows: list[dict[str, Any]] = []
        all_variants = {p.name: p.variants() for p in self.planners}
        every_variant = [v for vs in all_variants.values() for v in vs]
        ok_tokens, agent_inputs, scenes, log_names = [], [], [], {}
        for item in loaded:
            token, log_names[token], reason = item.token, item.log_name, item.error
            if not reason:
                try:
                    scene = self.source.scene(token)
                except Exception as error:  # noqa: BLE001 - record and go on
                    reason = _reason(error)
            if reason:
                logger.warning("token %s: cannot load scene: %s", token, reason)
                rows += self._error_rows(token, every_variant, f"loading scene failed: {reason}", log_names[token])
                continue
            ok_tokens.append(token)
            agent_inputs.append(item.agent_input)
            scenes.append(scene)
        if not ok_tokens:
            return rows
        batch = PlanningBatch(ok_tokens, agent_inputs, scenes if self.needs_scene_for_planning else None)
        candidates: dict[str, list[tuple[Variant, np.ndarray]]] = {t: [] for t in ok_tokens}
        for planner in self.planners:
            try:
                planned = self._plan(planner, batch)
            except Exception as error:  # noqa: BLE001
                planned = {t: error for t in ok_tokens}
            for token in ok_tokens:
                result = planned.get(token, KeyError(f"planner returned nothing for {token}"))
                if isinstance(result, BaseException):
                    logger.warning("planner %s failed on %s: %s", planner.name, token, _reason(result))
                    rows += self._error_rows(token, all_variants[planner.name],
                                             f"planner failed: {_reason(result)}", log_names[token])
                    continue
                for variant in all_variants[planner.name]:
                    if variant not in result:
                        rows += self._error_rows(token, [variant], f"planner returned no trajectory for "
                                                 f"{variant.label}", log_names[token])
                        continue
                    poses = np.asarray(result[variant], dtype=np.float64)
                    if poses.shape != (8, 3) or not np.all(np.isfinite(poses)):
                        rows += self._error_rows(token, [variant], f"planner output invalid: shape {poses.shape}, "
                                                 f"finite={bool(np.all(np.isfinite(poses)))}", log_names[token])
                        continue
                    candidates[token].append((variant, poses))
        for token, scene in zip(ok_tokens, scenes):
            rows += self._score_token(token, scene, candidates[token], log_names[token])
        return rows

    def _score_token(self, token: str, scene: Any, candidates: list[tuple[Variant, np.ndarray]],
                     log_name: str) -> list[dict[str, Any]]:
        if not candidates:
            return []
        variants = [v for v, _ in candidates]
        poses = np.stack([p for _, p in candidates])
        ego_pose = np.asarray(scene.current_frame.ego_status.ego_pose, dtype=np.float64)
        endpoints = relative_to_absolute_poses(ego_pose, poses[:, -1, :])
        rows = []
        for metric in self.metrics:
            try:
                if self.keep_states and metric == EXTENDED_COMFORT_METRIC:
                    scores, states = self.scorer.score_with_states(scene, poses, metric)
                    self.states.update({(token, v): states[i] for i, v in enumerate(variants)})
                else:
                    scores = self.scorer.score(scene, poses, metric)
                if len(scores) != len(variants):
                    raise ValueError(f"scorer returned {len(scores)} results for {len(variants)} trajectories")
            except Exception as error:  # noqa: BLE001 - record and go on
                logger.warning("token %s (%s): scoring failed: %s", token, metric, _reason(error))
                logger.debug(traceback.format_exc())
                scores = None
                reason = f"scoring failed: {_reason(error)}"
            for index, variant in enumerate(variants):
                rows.append(make_row(
                    token, variant, metric, stage=self.source.stage, log_name=log_name,
                    metrics=scores[index] if scores is not None else None, poses=poses[index],
                    endpoint=(float(endpoints[index, 0]), float(endpoints[index, 1])),
                    start=(float(ego_pose[0]), float(ego_pose[1])),
                    error="" if scores is not None else reason,
                ))
        return rows


def _ordered_shard(source: SceneSource, dist: Distributed, want_pairs: bool, links: Sequence[Any] = ()
                   ) -> tuple[list[str], ComfortPairs]:
    """This rank's tokens, in order, and their extended-comfort pairs (when ``want_pairs``).

    Stage-1 sources with timestamps are sharded by log (or were loaded as this rank's shard of logs) and run in
    time order, so that each scene's previous frame is scored just before it on the same rank; the two-stage
    ``links`` pair a stage-1 scene with its previous frame. Stage-2 sources are sharded by link, the two scenes
    of each stage-2 pair side by side (the previous frame's first), so that both are on the same rank."""
    if source.stage != 1:
        return _stage_two_shard(source, dist, want_pairs, links)
    tokens = source.tokens
    timestamp = getattr(source, "timestamp", None)
    if timestamp is None:
        return dist.shard(tokens), ComfortPairs()
    logs: dict[str, list[tuple[int, str]]] = {}
    timed = []
    for token in tokens:
        try:
            time_us = int(timestamp(token))
        except Exception:  # noqa: BLE001 - an unreadable scene: scored last, where loading it records the error
            time_us = None
        if time_us is not None:
            timed.append(token)
        logs.setdefault(_log_name_or_empty(source, token), []).append((time_us, token))
    shard = getattr(source, "shard", None)
    if shard is not None and tuple(shard) != (dist.rank, dist.world_size):
        raise ValueError(f"stage-{source.stage} scenes were loaded as log shard {tuple(shard)}, but this is rank "
                         f"{dist.rank} of {dist.world_size}")
    mine = [log for index, log in enumerate(sorted(logs))
            if shard is not None or index % dist.world_size == dist.rank]  # a loaded shard is all this rank's
    ordered = [token for log in mine for _, token in sorted(logs[log], key=lambda item: (item[0] is None, item))]
    pairs = ComfortPairs()
    if want_pairs:
        pairs = previous_tokens(timed, source.log_name, timestamp)
        pairs.update(two_stage_pairs(links, 1, timestamp, ordered))
    return ordered, pairs


def _stage_two_shard(source: SceneSource, dist: Distributed, want_pairs: bool, links: Sequence[Any]
                     ) -> tuple[list[str], ComfortPairs]:
    tokens = source.tokens
    present, placed = set(tokens), set()
    units: list[list[str]] = []  # scenes kept together on one rank: the stage-2 scenes of one link
    for link in links:
        unit = [t for pair in link.second_stage_pairs for t in reversed(pair) if t in present and t not in placed]
        unit = list(dict.fromkeys(unit))
        placed.update(unit)
        if unit:
            units.append(unit)
    units += [[t] for t in tokens if t not in placed]
    ordered = [t for unit in dist.shard(units) for t in unit]
    timestamp = getattr(source, "timestamp", None)
    if not want_pairs or timestamp is None:
        return ordered, ComfortPairs()
    return ordered, two_stage_pairs(links, 2, timestamp, ordered)


def _log_name_or_empty(source: SceneSource, token: str) -> str:
    try:
        return source.log_name(token)
    except Exception:  # noqa: BLE001 - the error is recorded when the scene is loaded
        return ""


def run_evaluation(
    sources: Sequence[SceneSource],
    planners: Sequence[CandidatePlanner],
    scorer: TrajectoryScorer,
    results_csv: PathLike,
    settings: Optional[RunSettings] = None,
    distributed: Optional[Distributed] = None,
) -> list[dict[str, Any]]:
    """Evaluate every planner on every source (stage) and return all rows (complete on rank 0)."""
    settings = settings or RunSettings()
    dist = distributed or Distributed()
    for metric in settings.metrics:
        check_version(metric)
    if not planners:
        raise ValueError("no planner to evaluate")
    results_csv = Path(results_csv)
    with results_lock(results_csv, dist.rank):
        return _run_locked(sources, planners, scorer, results_csv, settings, dist)


def _run_locked(sources: Sequence[SceneSource], planners: Sequence[CandidatePlanner], scorer: TrajectoryScorer,
                results_csv: Path, settings: RunSettings, dist: Distributed) -> list[dict[str, Any]]:
    mine = partial_path(results_csv, dist.rank)
    partials = {path: read_rows(path, discard_torn_last_row=True) for path in _partial_files(results_csv)}
    if mine in partials:  # drop a row an interrupted append left incomplete before appending more
        write_rows(mine, partials[mine])
    existing = merge_rows(read_rows(results_csv), *partials.values())
    done = completed_keys(existing)
    new_rows: list[dict[str, Any]] = []
    links = [link for s in sources if s.stage == 2 for link in getattr(s, "links", [])]
    for source in sources:
        def missing(token: str, planner: CandidatePlanner, stage: int = source.stage) -> bool:
            return any(
                row_key({"token": token, "stage": stage, "planner": v.planner, "omega": v.omega,
                         "seed": v.seed, "sample": v.sample, "metric": m}) not in done
                for v in planner.variants() for m in settings.metrics
            )

        shard, pairs = _ordered_shard(source, dist, EXTENDED_COMFORT_METRIC in settings.metrics, links)
        todo = [t for t in shard if any(missing(t, p) for p in planners)]
        active = [p for p in planners if any(missing(t, p) for t in todo)]
        evaluator = _BatchEvaluator(source, active, scorer, settings.metrics)
        if len(shard) > len(todo):
            logger.info("stage %d, rank %d: %d token(s) already scored, skipped", source.stage, dist.rank,
                        len(shard) - len(todo))
        poses_of = known_poses(existing) if evaluator.keep_states else {}

        def resimulate(token: str, poses: np.ndarray, source: SceneSource = source) -> np.ndarray:
            return scorer.score_with_states(source.scene(token), poses[None], EXTENDED_COMFORT_METRIC)[1][0]

        batches = [todo[i : i + settings.batch_size] for i in range(0, len(todo), settings.batch_size)]
        progress = tqdm(batches, desc=f"stage {source.stage} [rank {dist.rank}]", unit="batch",
                        disable=not settings.show_progress or not dist.is_main)
        held: list[dict[str, Any]] = []  # v2 rows waiting for their pair's other scene, scored later here
        later = set(todo)  # scenes this run scores after the current batch
        for batch_tokens, loaded in zip(progress, load_batches(source, batches, settings.num_workers)):
            rows = evaluator.evaluate(loaded)
            later.difference_update(batch_tokens)
            if evaluator.keep_states:
                rows = held + rows
                held = apply_extended_comfort(rows, pairs, evaluator.states, resimulate, poses_of, later)
                waiting = {id(row) for row in held}
                rows = [row for row in rows if id(row) not in waiting]
                # kept: this batch (a previous frame of the log is in this batch or the last) and waiting scenes
                keep = set(batch_tokens) | {row["token"] for row in held}
                evaluator.states = {k: v for k, v in evaluator.states.items() if k[0] in keep}
            append_rows(mine, rows)
            new_rows += rows
        if held:  # cannot happen: nothing is pending after the last batch
            raise RuntimeError(f"{len(held)} v2 row(s) still wait for their extended-comfort pair")
    gathered = dist.gather(new_rows)
    dist.barrier()
    merged = merge_rows(existing, gathered)
    if dist.is_main:
        write_rows(results_csv, merged)
        for path in _partial_files(results_csv):
            path.unlink(missing_ok=True)
    dist.barrier()
    return merged
