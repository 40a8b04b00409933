"""The stage plug-in interface and its registry.

A stage is one training algorithm: which parameters train, how its data is collected, how a micro-batch is
built and what is logged. The :class:`~vla.training.trainer.Trainer` owns the loop around it (policies,
optimizer steps, checkpoints, resume, logging, evaluation) and hands itself to the stage as ``trainer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from vla.training.eval_contract import EvalPolicy

STAGES: dict[str, type["Stage"]] = {}


def register_stage(cls: type["Stage"]) -> type["Stage"]:
    """Class decorator: make ``cls`` selectable as ``stages=[..., <cls.name>]``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no stage name")
    STAGES[cls.name] = cls
    return cls


def stage_names() -> list[str]:
    return list(STAGES)


def get_stage(name: str) -> type["Stage"]:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; valid stages: {stage_names()}")
    return STAGES[name]


class Stage:
    """One algorithm. Subclasses set the class attributes and implement :meth:`run` and :meth:`total_steps`."""

    name: ClassVar[str] = ""
    trainable: ClassVar[str] = "base"  # DipoleVLA.set_trainable scope: "base" (head, backbone) or "adapters"
    needs_reward: ClassVar[bool] = False  # rollouts scored by the train reward function
    builds_policy: ClassVar[bool] = False  # starts from a fresh model (else from the IL policy)

    def __init__(self, trainer: Any):
        self.trainer = trainer
        self.cfg = trainer.cfg

    @property
    def section(self) -> Any:
        """This stage's config section (``TrainConfig.<name>``)."""
        return getattr(self.cfg, self.name)

    def total_steps(self) -> int:
        raise NotImplementedError

    def micro_batch_size(self) -> int:
        return int(self.section.batch_size)

    def fingerprint(self) -> dict[str, Any]:
        """Settings a resumed run must share with the checkpoint (they fix the data order)."""
        return {f"{self.name}.batch_size": self.section.batch_size}

    def run(self, ckpt: Optional[Path]) -> None:
        """Train this stage from its start (``ckpt`` None) or from a checkpoint inside it."""
        raise NotImplementedError

    def final_policies(self, final: Any, load_il: Callable[[], Any]) -> list[EvalPolicy]:
        """Policies the final evaluation compares when this stage ends the run (``final`` = <output>/model)."""
        return [EvalPolicy(self.name, final, "base")]

    def round_policies(self, policy: Any) -> list[EvalPolicy]:
        """Policies evaluated after each round (``eval_every_round``)."""
        return [EvalPolicy(self.name, policy, "base")]
