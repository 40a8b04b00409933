"""accelerate / DeepSpeed plumbing of the trainer: ZeRO stage, whole-model construction, engine config,
mixed precision, parameter gathering for inference and state gathering for saving.

Everything DeepSpeed-specific lives here so the training loop reads the same with or without it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

import torch

POLICY_PREFIX = "policy."  # the prepared module wraps the policy as ``.policy`` (see PolicyObjective)


def is_deepspeed(accelerator) -> bool:
    return str(accelerator.distributed_type).endswith("DEEPSPEED")


def deepspeed_config(accelerator) -> dict:
    return accelerator.state.deepspeed_plugin.deepspeed_config


DEEPSPEED_PRECISIONS = (("bf16", torch.bfloat16), ("fp16", torch.float16))  # DeepSpeed config sections


def deepspeed_weight_dtype(accelerator) -> Optional[torch.dtype]:
    """The 16-bit dtype the DeepSpeed engine keeps its weights in (its config's enabled section), else None."""
    config = deepspeed_config(accelerator)
    return next((dtype for name, dtype in DEEPSPEED_PRECISIONS
                 if str(config.get(name, {}).get("enabled", False)).lower() == "true"), None)


def zero_stage(accelerator) -> int:
    if not is_deepspeed(accelerator):
        return 0
    return int(deepspeed_config(accelerator).get("zero_optimization", {}).get("stage", 0))


@contextlib.contextmanager
def full_parameter_construction(accelerator):
    """Build models with whole parameters even under ZeRO-3 (DeepSpeed partitions them at prepare time).

    transformers partitions sub-models built under an active ZeRO-3 config at construction (zero.Init), which
    breaks composite models whose own weight init then touches the empty shards; the policy is small enough
    to be built whole on every process.
    """
    if zero_stage(accelerator) != 3:
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        accelerator.state.deepspeed_plugin.set_deepspeed_weakref()


def configure_engine(accelerator, micro_batch: int, accumulation_steps: int, max_grad_norm: float) -> None:
    """Batch sizes, clipping and 16-bit save gathering of the DeepSpeed engine a stage is about to prepare."""
    if not is_deepspeed(accelerator):
        return
    ds = deepspeed_config(accelerator)
    ds["train_micro_batch_size_per_gpu"] = int(micro_batch)
    ds["gradient_accumulation_steps"] = int(accumulation_steps)
    ds["train_batch_size"] = int(micro_batch) * int(accumulation_steps) * accelerator.num_processes
    ds["gradient_clipping"] = float(max_grad_norm)
    ds.setdefault("zero_optimization", {})["stage3_gather_16bit_weights_on_model_save"] = True


def autocast(accelerator):
    """Mixed-precision context for forwards: accelerate's, or bf16/fp16 autocast under DeepSpeed (whose
    engine keeps 16-bit weights but does not cast float inputs such as camera images)."""
    if is_deepspeed(accelerator):
        dtype = deepspeed_weight_dtype(accelerator)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=accelerator.device.type, dtype=dtype)
    return accelerator.autocast()


@contextlib.contextmanager
def gathered(accelerator, module: torch.nn.Module):
    """Full parameters for inference (rollouts, evaluation) under ZeRO-3; a no-op otherwise."""
    if zero_stage(accelerator) == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            yield
    else:
        yield


def clips_gradients_itself(accelerator) -> bool:
    """DeepSpeed clips inside its engine step (``gradient_clipping``); otherwise the trainer clips."""
    return is_deepspeed(accelerator)


def gathered_policy_state(accelerator, engine) -> Optional[dict]:
    """The policy's full state dict under DeepSpeed (collective; None off rank 0), else None (use the module)."""
    if not is_deepspeed(accelerator):
        return None
    full = accelerator.get_state_dict(engine)  # gathers ZeRO-3 shards
    if full is None:
        return None
    return {k[len(POLICY_PREFIX):] if k.startswith(POLICY_PREFIX) else k: v for k, v in full.items()}


def match_engine_dtype(accelerator, policy) -> None:
    """After preparing a 16-bit DeepSpeed engine: DeepSpeed casts parameters only, so the model's dtype policy
    (``apply_dtype``) also casts its stored buffers (Florence-2's temporal position table), and no layer meets a
    float32 input outside autocast."""
    if is_deepspeed(accelerator):
        dtype = deepspeed_weight_dtype(accelerator)
        if dtype is not None:
            policy.apply_dtype(dtype)


def training_precision(accelerator) -> str:
    """"bf16", "fp16" or "no". Under DeepSpeed the engine's config decides (accelerate reports "no" there):
    its ``"auto"`` entries take the launcher's ``--mixed_precision``."""
    if not is_deepspeed(accelerator):
        return str(accelerator.mixed_precision)
    dtype = deepspeed_weight_dtype(accelerator)
    return next((name for name, value in DEEPSPEED_PRECISIONS if value == dtype), "no")


def use_cpu_threads(device, num_processes: int = 1, requested: Optional[int] = None) -> Optional[int]:
    """Set and return the torch intra-op threads of a process that computes on CPU: ``requested``, else the CPUs
    this process may run on divided by the processes on its machine (``LOCAL_WORLD_SIZE``, else
    ``num_processes``). ``accelerate launch`` sets OMP_NUM_THREADS=1 unless given ``--cpu``, which leaves a
    one-process CPU run on one core. On an accelerator: None, unchanged."""
    if getattr(device, "type", str(device)) != "cpu":
        return None
    if requested is None:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", num_processes))
        requested = max(1, available // max(1, local_processes))
    torch.set_num_threads(requested)
    return requested


def describe(accelerator) -> str:
    zero = zero_stage(accelerator)
    return (f"{accelerator.num_processes} process(es), {accelerator.distributed_type}"
            + (f" ZeRO-{zero}" if zero else "") + f", device {accelerator.device}, "
            f"mixed precision {training_precision(accelerator)}")
