"""Synthetic NAVSIM world: a seeded generator of nuPlan maps, OpenScene logs, camera images, splits and two-stage
scenes (see docs/synthetic_world.md).

    from data_pipelines.synthetic import build_config, generate_dataset
    info = generate_dataset(build_config("tiny"), "out/")

Names are imported lazily so that `python -m data_pipelines.synthetic.generate` runs its module only once.
"""

from importlib import import_module

_EXPORTS = {
    "list_presets": "config", "SyntheticConfigError": "config", "SyntheticWorldConfig": "config", "build_config": "config",
    "DatasetInfo": "generate", "generate_dataset": "generate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
