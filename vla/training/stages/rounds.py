"""Rollout rounds shared by the reward-driven stages (DIPOLE, EWR; specs/dipole.md §6).

A round: roll out K candidates per training scene from the current policy (each scene's noise seeded by
(round seed, token), ``vla.sampling``), score them with the reward function, compute the advantage G, then
train ``steps_per_round`` optimizer steps on micro-batches drawn from the round's buffer. The buffer is saved
with the checkpoints, so a resumed round trains on the same samples. A subclass says how candidates are
sampled (:meth:`sample_scenes`) and how a micro-batch becomes a loss call (:meth:`objective`).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from vla.sampling import sample_scenes
from vla.training.data import BatchStream, SceneBatcher, chunks
from vla.training.errors import EmptyDataError, TrainingError
from vla.training.metrics import reduce_stats, rollout_statistics
from vla.training.pause_points import pause_point
from vla.training.rollout import RolloutBuffer, score_candidates
from vla.training.stages.base import Stage

ROUND_SEED_STRIDE = 1_000_003  # rollout seed of round r = seed * stride + r (distinct across runs' seeds)


def rollout_seed(seed: int, round_index: int) -> int:
    return int(seed) * ROUND_SEED_STRIDE + int(round_index)


class RolloutStage(Stage):
    """Rounds of rollout -> score -> advantage -> weighted updates; subclasses add the algorithm."""

    needs_reward = True
    scene_batches: Optional[BatchStream] = None  # the current round's micro-batch inputs (set by train_round)

    def total_steps(self) -> int:
        return int(self.section.rounds * self.section.steps_per_round)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), f"{self.name}.num_candidates": self.section.rollout.num_candidates}

    # hooks ---------------------------------------------------------------------------------------------------
    def sample_scenes(self, policy, batch: dict, tokens: Sequence[str], seed: int, context=None) -> np.ndarray:
        """(B, K, 8, 3) rollout candidates of one batch of scenes."""
        raise NotImplementedError

    def objective(self, sel: np.ndarray, buffer: RolloutBuffer, batcher: SceneBatcher) -> tuple[str, dict, dict]:
        """(objective name, batch, loss kwargs) of one micro-batch of buffer rows ``sel``."""
        raise NotImplementedError

    def weight_statistics(self, buffer: RolloutBuffer) -> dict:
        """Rollout statistics of the training weights this stage derives from G."""
        return {}

    def probe(self, policy, batcher: SceneBatcher, probe: Sequence[int]) -> Optional[tuple[float, float]]:
        """An extra (sum, count) statistic measured with the rollout policy (e.g. drift from mu_0)."""
        return None

    def on_rollout_batch(self, rows: Sequence[int], batch: dict, context) -> None:
        """Called with each rollout batch's context (if the stage encodes it)."""

    def start_training(self, buffer: RolloutBuffer, batcher: SceneBatcher, ctx) -> None:
        """Called before a round's optimizer steps (after a resume too)."""

    # the round loop --------------------------------------------------------------------------------------------
    def run(self, ckpt: Optional[Path]) -> None:
        t, sec = self.trainer, self.section
        start_dir = t.stage_start_dir(self.name)
        if start_dir is None or not Path(start_dir).is_dir():
            raise TrainingError(f"stage {self.name!r}: starting policy {start_dir} does not exist")
        policy = t.load_policy(start_dir)
        ctx = t.prepare_stage(self, policy)
        batcher = t.batcher(t.train_items, policy, "train split")
        buffer: Optional[RolloutBuffer] = None
        if ckpt is not None:
            buffer = t.restore(ctx, ckpt, with_buffer=t.state.round_has_buffer)
        probe = batcher.shard(np.arange(len(batcher)))[:t.drift_probe_scenes]
        while t.state.round_index < sec.rounds:
            r = t.state.round_index
            if buffer is None:
                buffer = self.collect_round(ctx, batcher, r, probe)
                t.state.round_has_buffer = True
                t.checkpoint(ctx, buffer)
            self.train_round(ctx, batcher, buffer)
            t.state.round_index += 1
            t.state.step_in_round = 0
            t.state.round_has_buffer = False
            buffer = None
            t.checkpoint(ctx)
            if sec.eval_every_round:
                t.evaluate_round(ctx, self, r)
        t.finish_stage(ctx)

    def collect_round(self, ctx, batcher: SceneBatcher, round_index: int, probe: Sequence[int] = ()) -> RolloutBuffer:
        """Roll out and score this process's shard of the round's scenes; log every sub-metric (§8)."""
        t, sec = self.trainer, self.section
        ro = sec.rollout
        scenes = batcher.shard(batcher.round_scenes(round_index, ro.scenes_per_round))
        if len(scenes) == 0:
            raise EmptyDataError(f"round {round_index}: process {t.acc.process_index} has no scenes to roll out")
        seed = rollout_seed(self.cfg.seed, round_index)
        t0 = time.perf_counter()
        ctx.policy.eval()
        out = []
        with t.gathered(ctx), t.autocast(), torch.no_grad():
            groups = [(rows, scenes[rows[0]:rows[-1] + 1]) for rows in chunks(range(len(scenes)), ro.batch_size)]
            with batcher.stream([group for _, group in groups], with_targets=False) as batches:
                for rows, group in t.wrap_progress(f"{self.name} round {round_index}: rollout")(groups):
                    batch = batches.take(group)
                    context = ctx.policy.encode(batch)
                    self.on_rollout_batch(rows, batch, context)
                    out.append(self.sample_scenes(ctx.policy, batch, [batcher.token(i) for i in group], seed,
                                                  context))
            drift = self.probe(ctx.policy, batcher, probe)
        poses = np.concatenate(out, axis=0)
        t_roll = time.perf_counter() - t0
        tokens = [batcher.token(i) for i in scenes]
        human = batcher.target_poses(scenes) if self.scores_human() else None
        pause_point("rollout")
        t0 = time.perf_counter()
        t.print(f"[{self.name}] round {round_index}: scoring {poses.shape[0]}x{poses.shape[1]} candidates")
        scored, human_r, human_v = score_candidates(t.train_reward, tokens, poses, human)
        pause_point("scoring")
        t_score = time.perf_counter() - t0
        buffer = RolloutBuffer(
            round_index=round_index, tokens=tokens, scene_indices=np.asarray(scenes), poses=poses.astype(np.float32),
            rewards=scored.scores, valid=scored.valid, sub_metrics=scored.sub_metrics, human_rewards=human_r,
            human_valid=human_v, errors=scored.errors,
        )
        stats = rollout_statistics(buffer.rewards, buffer.valid, buffer.sub_metrics, buffer.poses)
        if human is not None:
            stats["rollout/human_score"] = (float(np.nansum(np.where(human_v, human_r, 0.0))), float(human_v.sum()))
        if sec.human_anchor:  # the logged trajectory joins the group as one more scored sample (§8 option (a))
            buffer = buffer.with_extra_candidate(human.astype(np.float32), human_r, human_v)
        buffer.compute_advantages(sec.advantage)
        stats.update(self.weight_statistics(buffer))
        if drift is not None:
            stats["drift/l2_to_mu0_m"] = drift
        stats["rollout/sampler_nfe"] = (float(ro.num_steps * (2 if ro.omega != 0 else 1)), 1.0)
        stats["time/rollout_s"] = (t_roll, 1.0)
        stats["time/scoring_s"] = (t_score, 1.0)
        stats["rollout/scoring_errors"] = (float(len(buffer.errors)), 1.0)
        means = reduce_stats(t.acc, {"r": stats})["r"]
        t.log(means, prefix=f"{self.name}/")
        if t.is_main:
            shown = " ".join(f"{k.split('/', 1)[1]}={v:.3f}" for k, v in sorted(means.items()) if np.isfinite(v))
            t.print(f"[{self.name}] round {round_index} rollouts: {shown}")
        for token, message in list(buffer.errors.items())[:5]:
            t.print(f"[{self.name}] scoring failed for {token}: {message}")
        return buffer

    def scores_human(self) -> bool:
        """Score the logged trajectory too (a baseline advantage, the human anchor, or asked for)."""
        from vla.training.advantages import get_advantage

        sec = self.section
        return sec.rollout.score_human or sec.human_anchor or get_advantage(sec.advantage).needs_baseline

    def train_round(self, ctx, batcher: SceneBatcher, buffer: RolloutBuffer) -> None:
        t, sec = self.trainer, self.section
        rows = buffer.trainable_rows()
        if len(rows) == 0:
            t.print(f"[{self.name}] round {buffer.round_index}: no usable group on process "
                    f"{t.acc.process_index}; training on zero-weight samples")
            rows = np.arange(len(buffer))
        accum = self.cfg.gradient_accumulation_steps
        row_rng_seed = [self.cfg.seed, buffer.round_index, t.acc.process_index]
        self.start_training(buffer, batcher, ctx)

        def rows_at(pos: int) -> np.ndarray:
            n = len(rows)
            positions = np.arange(pos * sec.batch_size, (pos + 1) * sec.batch_size)
            sel = np.empty(sec.batch_size, dtype=np.int64)
            for epoch in np.unique(positions // n):
                perm = np.random.default_rng(row_rng_seed + [int(epoch)]).permutation(n)
                mask = positions // n == epoch
                sel[mask] = rows[perm[positions[mask] % n]]
            return sel

        # scene inputs of the micro-batches from this step on (loaded only if the objective asks for them)
        start = t.state.step_in_round * accum
        self.scene_batches = batcher.stream(
            (buffer.scene_indices[rows_at(pos)] for pos in itertools.count(start)), with_targets=False)

        def micro(m: int):
            return self.objective(rows_at(t.state.step_in_round * accum + m), buffer, batcher)

        def report(terms: dict) -> None:
            t.log(terms, prefix=f"{self.name}/")
            t.print(f"[{self.name}] round {buffer.round_index} step {t.state.step_in_round}/{sec.steps_per_round} "
                    + " ".join(f"{k} {v:.4g}" for k, v in terms.items()))

        with self.scene_batches:
            t.train_steps(ctx, micro, counter="step_in_round", total=sec.steps_per_round,
                          desc=f"{self.name} round {buffer.round_index}: train", report=report, buffer=buffer)

    def candidate_batch(self, sel: np.ndarray, buffer: RolloutBuffer, batcher: SceneBatcher) -> dict:
        """Model inputs of buffer rows ``sel`` (the round's next micro-batch) with their candidates as
        ``target_poses`` (B, K, 8, 3)."""
        batch = self.scene_batches.take(buffer.scene_indices[sel])
        batch["target_poses"] = torch.from_numpy(buffer.poses[sel]).to(self.trainer.acc.device)
        return batch

    def usable(self, sel: np.ndarray, buffer: RolloutBuffer) -> tuple[torch.Tensor, torch.Tensor]:
        """(G, usable mask) of buffer rows ``sel`` on the training device."""
        device = self.trainer.acc.device
        return (torch.from_numpy(buffer.advantages[sel]).to(device),
                torch.from_numpy(buffer.usable[sel]).to(device))


def sample_candidates(policy, batch: dict, tokens: Sequence[str], seed: int, rollout, mode: str,
                      context=None) -> np.ndarray:
    """K rollout candidates per scene (B, K, 8, 3) with the rollout section's settings."""
    return sample_scenes(policy, batch, tokens, seed=seed, omega=rollout.omega, mode=mode,
                         num_samples=rollout.num_candidates, num_steps=rollout.num_steps,
                         init_noise_scale=rollout.init_noise_scale, context=context)
