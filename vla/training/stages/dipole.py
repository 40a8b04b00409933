"""DIPOLE rounds (specs/dipole.md §3, §6): rollouts of the guided policy, then the ``positive`` and ``negative``
adapters trained on the same samples with weights sigma(beta G + k) and 1 - sigma(beta G + k).

The backbone is frozen in this stage, so each scene's backbone context is computed once per round: the
rollout's context is kept on CPU (``reuse_context``) and every micro-step reads it instead of re-running the
processor and the backbone. A round whose contexts would exceed ``context_cache_max_mb`` per process
re-encodes each micro-batch instead. After a resume inside a round the contexts are encoded again with the
rollout's batching, which gives the same values. Either way the frozen backbone runs in eval mode (no
dropout), as in the rollouts, so the update sees the context the candidates were sampled from.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from data_pipelines.lru_cache import BYTES_PER_MB
from vla.backbones.base import Context
from vla.sampling import sample_scenes
from vla.training.data import chunks
from vla.training.eval_contract import EvalPolicy
from vla.training.metrics import rollout_statistics
from vla.training.stages.base import register_stage
from vla.training.stages.rounds import RolloutStage, sample_candidates

DRIFT_PROBE_SEED = 4242  # fixed noise of the drift probe (same draws every round)
DRIFT_PROBE_NUM_STEPS = 5  # sampler steps of the drift probe (a cheap monitor, not an evaluation)


class ContextCache:
    """Per buffer row: the context (tokens, mask, and the BEV probabilities a ``bev.head_lookup`` head reads) and the
    model's proprio input, on CPU."""

    def __init__(self, num_rows: int, max_mb: float):
        self.num_rows, self.max_bytes = int(num_rows), float(max_mb) * BYTES_PER_MB
        self.tokens: Optional[torch.Tensor] = None
        self.mask: Optional[torch.Tensor] = None
        self.proprio: Optional[torch.Tensor] = None
        self.bev_probabilities: Optional[torch.Tensor] = None
        self.filled = np.zeros(self.num_rows, dtype=bool)
        self.too_big = False

    @property
    def complete(self) -> bool:
        return not self.too_big and bool(self.filled.all())

    def add(self, rows: Sequence[int], batch: dict, context: Context) -> None:
        if self.too_big:
            return
        rows = np.asarray(rows, dtype=np.int64)
        tokens = context.tokens.detach()
        grids = context.bev_probabilities
        if self.tokens is None:
            per_row = tokens[0].numel() * tokens.element_size() + context.mask[0].numel()
            if grids is not None:
                per_row += grids[0].numel() * grids.element_size()
            if per_row * self.num_rows > self.max_bytes:
                self.too_big = True
                return
            self.tokens = torch.empty((self.num_rows,) + tuple(tokens.shape[1:]), dtype=tokens.dtype)
            self.mask = torch.empty((self.num_rows,) + tuple(context.mask.shape[1:]), dtype=context.mask.dtype)
            proprio = batch["proprio"]
            self.proprio = torch.empty((self.num_rows,) + tuple(proprio.shape[1:]), dtype=proprio.dtype)
            if grids is not None:
                self.bev_probabilities = torch.empty((self.num_rows,) + tuple(grids.shape[1:]), dtype=grids.dtype)
        index = torch.from_numpy(rows)
        self.tokens[index] = tokens.cpu()
        self.mask[index] = context.mask.detach().cpu()
        self.proprio[index] = batch["proprio"].detach().cpu()
        if self.bev_probabilities is not None:
            self.bev_probabilities[index] = grids.detach().cpu()
        self.filled[rows] = True

    def select(self, sel: np.ndarray, device) -> tuple[dict, Context]:
        index = torch.from_numpy(np.asarray(sel, dtype=np.int64))
        grids = None if self.bev_probabilities is None else self.bev_probabilities[index].to(device)
        context = Context(self.tokens[index].to(device), self.mask[index].to(device), None, grids)
        return {"proprio": self.proprio[index].to(device)}, context


@register_stage
class DipoleStage(RolloutStage):
    name = "dipole"
    trainable = "adapters"

    def __init__(self, trainer):
        super().__init__(trainer)
        self.contexts: Optional[ContextCache] = None

    def sample_scenes(self, policy, batch, tokens, seed, context=None):
        return sample_candidates(policy, batch, tokens, seed, self.section.rollout, "guided", context)

    # context reuse ---------------------------------------------------------------------------------------------
    def _new_cache(self, num_rows: int) -> Optional[ContextCache]:
        return ContextCache(num_rows, self.section.context_cache_max_mb) if self.section.reuse_context else None

    def on_rollout_batch(self, rows, batch, context):
        if self.contexts is not None:
            self.contexts.add(rows, batch, context)

    def collect_round(self, ctx, batcher, round_index, probe=()):
        ro = self.section.rollout
        self.contexts = self._new_cache(len(batcher.shard(batcher.round_scenes(round_index, ro.scenes_per_round))))
        return super().collect_round(ctx, batcher, round_index, probe)

    def start_training(self, buffer, batcher, ctx):
        t = self.trainer
        self._ctx = ctx
        if not self.section.reuse_context:
            self.contexts = None
            return
        fresh = self.contexts is not None and self.contexts.num_rows == len(buffer) and (
            self.contexts.complete or self.contexts.too_big)
        if not fresh:  # resumed inside a round: encode the buffer's scenes with the rollout's batching
            self.contexts = self._new_cache(len(buffer))
            ctx.policy.eval()
            groups = list(chunks(range(len(buffer)), self.section.rollout.batch_size))
            with t.gathered(ctx), t.autocast(), torch.no_grad(), batcher.stream(
                    [buffer.scene_indices[np.asarray(rows)] for rows in groups], with_targets=False) as batches:
                for rows in groups:
                    batch = batches.take(buffer.scene_indices[np.asarray(rows)])
                    self.contexts.add(rows, batch, ctx.policy.encode(batch))
                    if self.contexts.too_big:
                        break
        if self.contexts.too_big:
            t.print(f"[dipole] round {buffer.round_index}: contexts exceed dipole.context_cache_max_mb="
                    f"{self.section.context_cache_max_mb:g}; re-encoding each micro-batch")

    # one micro-batch -----------------------------------------------------------------------------------------------
    def objective(self, sel, buffer, batcher):
        sec, device = self.section, self.trainer.acc.device
        kwargs = {}
        if self.contexts is not None and self.contexts.complete:
            batch, kwargs["context"] = self.contexts.select(sel, device)
            batch["target_poses"] = torch.from_numpy(buffer.poses[sel]).to(device)
        else:
            batch = self.candidate_batch(sel, buffer, batcher)
            kwargs["context"] = self.frozen_context(batch)
        g, usable = self.usable(sel, buffer)
        kwargs.update(sample_mask=usable, g=g, beta=sec.beta)
        if sec.bc_weight > 0:  # BC anchor on the logged trajectory (specs/dipole.md §8 option (b))
            kwargs["bc_weight"] = sec.bc_weight
            kwargs["anchor_poses"] = torch.from_numpy(batcher.target_poses(buffer.scene_indices[sel])).to(device)
        return self.loss_call(kwargs, batch)

    def loss_call(self, kwargs: dict, batch: dict) -> tuple[str, dict, dict]:
        """(objective, batch, kwargs) of the DIPOLE loss from the shared inputs (g, mask, anchor, context)."""
        sec = self.section
        kwargs["normalize_weights"] = sec.normalize_weights
        if sec.weight_offset != 0:
            kwargs["offset"] = sec.weight_offset
        return "dipole", batch, kwargs

    def frozen_context(self, batch: dict) -> Context:
        """The frozen backbone's context of a micro-batch, in eval mode (as in the rollouts: no dropout)."""
        t, policy = self.trainer, self._ctx.policy
        was_training = policy.backbone.training
        policy.backbone.eval()
        try:
            with t.gathered(self._ctx), t.autocast(), torch.no_grad():
                return policy.encode(batch)
        finally:
            policy.backbone.train(was_training)

    # logging ------------------------------------------------------------------------------------------------------
    def weight_statistics(self, buffer):
        sec, k = self.section, self.section.rollout.num_candidates
        stats = rollout_statistics(buffer.rewards[:, :k], buffer.valid[:, :k], {}, buffer.poses[:, :k],
                                   buffer.advantages[:, :k], buffer.usable[:, :k], beta=sec.beta,
                                   weight_offset=sec.weight_offset, **self.weight_statistics_kwargs())
        return {n: v for n, v in stats.items() if n.startswith(("rollout/mean_", "rollout/frac_ewr"))}

    def weight_statistics_kwargs(self) -> dict:
        return {}

    def probe(self, policy, batcher, probe):
        """Mean L2 (m) between the current rollout policy and mu_0 (the frozen base head) on fixed noise."""
        if len(probe) == 0:
            return None
        batch = batcher.batch(probe, with_targets=False)
        tokens = [batcher.token(i) for i in probe]
        context = policy.encode(batch)
        outs = [torch.from_numpy(sample_scenes(policy, batch, tokens, seed=DRIFT_PROBE_SEED,
                                               omega=self.section.rollout.omega, mode=mode,
                                               num_steps=DRIFT_PROBE_NUM_STEPS, context=context))
                for mode in ("base", "guided")]
        diff = torch.linalg.norm(outs[0][..., :2] - outs[1][..., :2], dim=-1).mean(-1).flatten()
        return float(diff.sum()), float(diff.numel())

    # evaluation ---------------------------------------------------------------------------------------------------
    def final_policies(self, final, load_il):
        # DIPOLE never changes the base head: the final model's base policy is mu_0
        return [EvalPolicy("il", final, "base"),
                EvalPolicy("dipole", final, "guided", tuple(self.cfg.eval.omegas))]

    def round_policies(self, policy):
        return [EvalPolicy("dipole", policy, "guided", tuple(self.cfg.eval.omegas))]
