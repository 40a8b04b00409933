"""DIPOLE vision-language-action model: config, model, processor (training lives in vla.training)."""

from vla.configuration_dipole import DipoleVLAConfig
from vla.errors import CheckpointError, ModelConfigError, NormalizationError, VLAError, VLAInputError
from vla.modeling_dipole import Context, DipoleLossOutput, DipoleVLA
from vla.processing_dipole import DipoleProcessor, NormalizationStats, compute_normalization_stats

__all__ = [
    "DipoleVLAConfig",
    "DipoleVLA",
    "DipoleProcessor",
    "DipoleLossOutput",
    "Context",
    "NormalizationStats",
    "compute_normalization_stats",
    "VLAError",
    "ModelConfigError",
    "CheckpointError",
    "VLAInputError",
    "NormalizationError",
]
