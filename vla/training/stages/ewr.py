"""The exponentially weighted regression baseline (specs/dipole.md §2.1), like for like with DIPOLE.

Everything but the weighting is DIPOLE's: rollouts of the `positive` branch (omega = 0), the same advantage G,
context reuse, BC anchor, optimizer and budget. Only the `positive` LoRA adapter is trained, by regression on
the candidates weighted by exp(beta G) clipped at ``ewr_max_weight`` (:meth:`DipoleVLA.loss_ewr`), so EWR and
DIPOLE train the same kind and amount of parameters (EWR one adapter, DIPOLE two) and EWR is sampled as pi+.
"""

from __future__ import annotations

from vla.training.eval_contract import EvalPolicy
from vla.training.stages.base import register_stage
from vla.training.stages.dipole import DipoleStage

EWR_OMEGA = 0.0
"""EWR has one branch: the guided sampler at omega = 0 is exactly the `positive` adapter."""


@register_stage
class EWRStage(DipoleStage):
    name = "ewr"
    trainable = "positive"

    def loss_call(self, kwargs, batch):
        kwargs["max_weight"] = self.section.ewr_max_weight
        return "ewr", batch, kwargs

    def weight_statistics_kwargs(self):
        return {"ewr_max_weight": self.section.ewr_max_weight}

    def final_policies(self, final, load_il):
        # EWR never changes the base head: the final model's base policy is mu_0
        return [EvalPolicy("il", final, "base"), EvalPolicy("ewr", final, "guided", (EWR_OMEGA,))]

    def round_policies(self, policy):
        return [EvalPolicy("ewr", policy, "guided", (EWR_OMEGA,))]
