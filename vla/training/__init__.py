"""Training of DipoleVLA policies: imitation warm start, DIPOLE rounds, the EWR baseline, checkpoints."""

from vla.training.config import (
    DataSection, DipoleSection, EvalSection, ILSection, ModelSection, OptimSection, RewardSection, RolloutSection,
    TrainConfig,
)
from vla.training.trainer import Trainer

__all__ = [
    "DataSection", "DipoleSection", "EvalSection", "ILSection", "ModelSection", "OptimSection", "RewardSection",
    "RolloutSection", "TrainConfig", "Trainer",
]
