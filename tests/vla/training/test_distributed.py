"""Precision reporting under DeepSpeed, and the shipped accelerate configs that a GPU launch reads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from vla.training.distributed import describe, training_precision

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "accelerate"


def fake_accelerator(distributed_type: str, mixed_precision: str = "no", ds_config: dict | None = None):
    plugin = SimpleNamespace(deepspeed_config=ds_config or {}, zero_stage=2)
    return SimpleNamespace(distributed_type=distributed_type, mixed_precision=mixed_precision, num_processes=1,
                           device="cuda:0", state=SimpleNamespace(deepspeed_plugin=plugin))


@pytest.mark.parametrize("ds_config, expected", [
    ({"bf16": {"enabled": True}, "fp16": {"enabled": False}}, "bf16"),
    ({"bf16": {"enabled": "true"}}, "bf16"),
    ({"bf16": {"enabled": False}, "fp16": {"enabled": True}}, "fp16"),
    ({"bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}}, "no"),  # "auto" left unresolved: fp32
    ({}, "no"),
])
def test_deepspeed_precision_comes_from_the_engine_config(ds_config, expected):
    # accelerate reports "no" under DeepSpeed whatever the engine does
    accelerator = fake_accelerator("DistributedType.DEEPSPEED", "no", ds_config)
    assert training_precision(accelerator) == expected


def test_other_backends_report_accelerates_mixed_precision():
    accelerator = fake_accelerator("DistributedType.MULTI_GPU", "bf16", {"bf16": {"enabled": False}})
    assert training_precision(accelerator) == "bf16"
    assert describe(accelerator).endswith("mixed precision bf16")


@pytest.mark.parametrize("path", sorted(ACCELERATE_CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_deepspeed_configs_leave_precision_to_the_command_line(path):
    """With a DeepSpeed JSON, accelerate refuses a ``mixed_precision`` key in its own config on GPUs (seen on an
    H200 with accelerate 1.15); the JSON's ``"auto"`` takes ``--mixed_precision`` instead."""
    config = yaml.safe_load(path.read_text())
    if config.get("distributed_type") != "DEEPSPEED":
        assert "mixed_precision" in config
        return
    assert "mixed_precision" not in config
    json_file = Path(config["deepspeed_config"]["deepspeed_config_file"])
    assert (ACCELERATE_CONFIGS.parents[1] / json_file).is_file()
