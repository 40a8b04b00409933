"""Precision reporting under DeepSpeed, and the shipped accelerate configs that a GPU launch reads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from vla.testing import make_agent_input, tiny_model
from vla.training.distributed import describe, match_engine_dtype, training_precision, use_cpu_threads

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


def test_a_16_bit_engine_gets_the_models_dtype_policy_for_its_buffers():
    """DeepSpeed 0.19 casts parameters only; Florence-2's stored position table stayed float32 and a forward
    outside autocast failed on a GPU. After ``match_engine_dtype`` the model runs in bf16 without autocast."""
    model = tiny_model("tiny-florence2")
    for param in model.parameters():  # what the engine does
        param.data = param.data.to(torch.bfloat16)
    batch = model.processor([make_agent_input(np.random.default_rng(0))])
    with pytest.raises(RuntimeError, match="dtype"):
        model.encode(batch)
    match_engine_dtype(fake_accelerator("DistributedType.DEEPSPEED", ds_config={"bf16": {"enabled": True}}), model)
    assert all(b.dtype == torch.bfloat16 for n, b in model.named_buffers() if n.endswith("pos_idx_to_embed"))
    assert model.encode(batch).tokens.dtype == torch.bfloat16


def test_no_cast_without_a_16_bit_engine():
    model = tiny_model("tiny-florence2")
    match_engine_dtype(fake_accelerator("DistributedType.DEEPSPEED", ds_config={"bf16": {"enabled": "auto"}}), model)
    match_engine_dtype(fake_accelerator("DistributedType.MULTI_GPU", "bf16"), model)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.fixture
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cpu_training_uses_its_share_of_the_cpus_whatever_omp_num_threads_says(monkeypatch, restore_torch_threads):
    # accelerate launch exports OMP_NUM_THREADS=1 (torch then starts with one thread) unless given --cpu
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    torch.set_num_threads(1)
    one = torch.device("cpu")
    assert use_cpu_threads(one) == 4 and torch.get_num_threads() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two processes on this machine share its CPUs
    assert use_cpu_threads(torch.device("cpu"), num_processes=4) == 2
    assert use_cpu_threads(one, requested=3) == 3 and torch.get_num_threads() == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert use_cpu_threads(one) == 1  # never 0


def test_accelerator_devices_keep_their_thread_setting(restore_torch_threads):
    torch.set_num_threads(1)
    assert use_cpu_threads(torch.device("cuda", 0)) is None
    assert torch.get_num_threads() == 1
