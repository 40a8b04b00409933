"""Sampling trajectories for a batch of scenes: processor -> encode once -> sample -> numpy.

The one place where the model is sampled outside the model itself: the planner, the evaluation harness
(through :class:`PolicySampler`), the training rollouts, the drift probe and the EWR base rollouts all call
:func:`sample_scenes`. One seeding convention: each scene's initial noise comes from its own generator,
seeded by (seed, scene token) (:func:`scene_noise_seed`), so a scene's samples do not depend on how scenes
are batched, sharded over processes or resumed, and every scene gets fresh noise.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from vla.errors import VLAInputError

SAMPLING_MODES = ("guided", "base")


def scene_noise_seed(seed: int, token: str) -> int:
    """Seed of one scene's initial noise, derived from the sampling seed and the scene token (63 bits)."""
    digest = hashlib.sha256(f"{int(seed)}:{token}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def scene_generators(seed: int, tokens: Sequence[str], device) -> list[torch.Generator]:
    """One generator per scene, seeded by (seed, token)."""
    return [torch.Generator(device=torch.device(device)).manual_seed(scene_noise_seed(seed, t)) for t in tokens]


def model_device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if device is None:
        device = next(model.parameters()).device
    return torch.device(device)


def prepare_inputs(model: Any, agent_inputs: Sequence[Any], processor: Any = None) -> dict:
    """The processor's batch of ``agent_inputs``, tensors on the model's device."""
    processor = processor if processor is not None else getattr(model, "processor", None)
    if processor is None:
        raise VLAInputError("processor", "no processor: pass one or use a model that carries model.processor")
    device = model_device(model)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in dict(processor(list(agent_inputs))).items()}


@torch.no_grad()
def sample_scenes(
    model: Any,
    batch: dict,
    tokens: Sequence[str],
    *,
    seed: int,
    omega: Union[float, Sequence[float]] = 0.0,
    mode: str = "guided",
    num_samples: int = 1,
    num_steps: Optional[int] = None,
    init_noise_scale: Optional[float] = None,
    context: Any = None,
) -> np.ndarray:
    """float32 poses (B, S, 8, 3), or (B, W, S, 8, 3) for a list of W omegas; ``mode="base"`` ignores omega.

    ``context`` (from ``model.encode(batch)``) is computed here when not given; pass it to sample several
    seeds or modes from one backbone pass.
    """
    if mode not in SAMPLING_MODES:
        raise VLAInputError("mode", f"unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")
    tokens = [str(t) for t in tokens]
    if context is None:
        context = model.encode(batch)
    kwargs: dict[str, Any] = {"num_samples": int(num_samples), "context": context, "mode": mode,
                              "generator": scene_generators(seed, tokens, model_device(model))}
    if num_steps is not None:
        kwargs["num_steps"] = int(num_steps)
    if init_noise_scale is not None:
        kwargs["init_noise_scale"] = float(init_noise_scale)
    sweep = isinstance(omega, (list, tuple))
    if mode == "guided":
        poses = model.sample(batch, omega=list(omega) if sweep else float(omega), **kwargs)
    else:
        poses = model.sample(batch, **kwargs)
        if sweep:
            poses = poses[:, None]
    return poses.detach().float().cpu().numpy().astype(np.float32)


class PolicySampler:
    """A model (and its processor) as the evaluation harness's scene sampler (see ``ModelPlanner``)."""

    def __init__(self, model: Any, processor: Any = None):
        self.model = model
        self.processor = processor if processor is not None else getattr(model, "processor", None)
        if self.processor is None:
            raise VLAInputError("processor", "no processor: pass one or use a model that carries model.processor")

    @torch.inference_mode()
    def sample_agent_inputs(
        self, agent_inputs: Sequence[Any], tokens: Sequence[str], *, seeds: Sequence[int],
        omegas: Optional[Sequence[float]], mode: str, num_samples: int, num_steps: Optional[int] = None,
    ) -> list[np.ndarray]:
        """Per seed, poses (B, W, S, 8, 3) (W = 1 for ``omegas=None``); the backbone runs once for all seeds."""
        batch = prepare_inputs(self.model, agent_inputs, self.processor)
        context = self.model.encode(batch)
        omega = [0.0] if omegas is None else [float(w) for w in omegas]
        return [sample_scenes(self.model, batch, tokens, seed=seed, omega=omega, mode=mode,
                              num_samples=num_samples, num_steps=num_steps, context=context) for seed in seeds]
