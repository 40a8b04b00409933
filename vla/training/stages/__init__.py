"""Training stages (algorithms) as plug-ins: every module of this package registers its stage by name.

Adding an algorithm is one new module here (a :class:`Stage` subclass decorated with :func:`register_stage`)
plus its config section in ``vla/training/config.py``.
"""

import importlib
import pkgutil

from vla.training.stages.base import STAGES, Stage, get_stage, register_stage, stage_names

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["STAGES", "Stage", "get_stage", "register_stage", "stage_names"]
