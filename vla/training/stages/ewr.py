"""The exponentially weighted regression baseline (specs/dipole.md §2.1): rollouts of the base head, then
behaviour cloning of the candidates weighted by exp(beta G), clipped at ``ewr_max_weight``."""

from __future__ import annotations

from vla.training.advantages import ewr_weights
from vla.training.eval_contract import EvalPolicy
from vla.training.metrics import rollout_statistics
from vla.training.stages.base import register_stage
from vla.training.stages.rounds import RolloutStage, sample_candidates


@register_stage
class EWRStage(RolloutStage):
    name = "ewr"
    trainable = "base"

    def sample_scenes(self, policy, batch, tokens, seed, context=None):
        return sample_candidates(policy, batch, tokens, seed, self.section.rollout, "base", context)

    def weight_statistics(self, buffer):
        sec, k = self.section, self.section.rollout.num_candidates
        stats = rollout_statistics(buffer.rewards[:, :k], buffer.valid[:, :k], {}, buffer.poses[:, :k],
                                   buffer.advantages[:, :k], buffer.usable[:, :k], beta=sec.beta,
                                   weight_offset=sec.weight_offset, ewr_max_weight=sec.ewr_max_weight)
        return {n: v for n, v in stats.items() if n.startswith(("rollout/mean_", "rollout/frac_ewr"))}

    def objective(self, sel, buffer, batcher):
        sec = self.section
        batch = self.candidate_batch(sel, buffer, batcher)
        g, usable = self.usable(sel, buffer)
        weights = ewr_weights(g, sec.beta, sec.ewr_max_weight) * usable.to(g.dtype)
        return "il", batch, {"sample_mask": usable, "sample_weights": weights}

    def final_policies(self, final, load_il):
        il = load_il()
        return ([] if il is None else [EvalPolicy("il", il, "base")]) + [EvalPolicy("ewr", final, "base")]

