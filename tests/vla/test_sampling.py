"""vla.sampling: one encode per call, each scene's noise from (seed, token) whatever the batching."""

from __future__ import annotations

import numpy as np
import pytest

from vla import VLAInputError
from vla.sampling import PolicySampler, prepare_inputs, sample_scenes, scene_noise_seed
from vla.testing import make_agent_input, perturb, tiny_model


@pytest.fixture(scope="module")
def model():
    model = tiny_model("tiny-hf-vlm")
    perturb(model.head)
    return model.eval()


def test_a_scene_samples_the_same_alone_or_in_a_batch(model):
    rng = np.random.default_rng(0)
    inputs = [make_agent_input(rng) for _ in range(3)]
    tokens = ["a", "b", "c"]
    batch = prepare_inputs(model, inputs)
    together = sample_scenes(model, batch, tokens, seed=5, omega=[0.0, 1.0], num_samples=2, num_steps=3)
    assert together.shape == (3, 2, 2, 8, 3) and together.dtype == np.float32
    alone = sample_scenes(model, prepare_inputs(model, inputs[1:2]), ["b"], seed=5, omega=[0.0, 1.0],
                          num_samples=2, num_steps=3)
    np.testing.assert_allclose(alone[0], together[1], rtol=1e-4, atol=1e-4)
    other_seed = sample_scenes(model, batch, tokens, seed=6, omega=1.0, num_samples=2, num_steps=3)
    assert other_seed.shape == (3, 2, 8, 3) and not np.allclose(other_seed, together[:, 1])
    base = sample_scenes(model, batch, tokens, seed=5, mode="base", num_steps=3)
    assert base.shape == (3, 1, 8, 3)
    with pytest.raises(VLAInputError, match="mode"):
        sample_scenes(model, batch, tokens, seed=5, mode="nope")


def test_policy_sampler_encodes_once_for_every_seed(model, monkeypatch):
    calls = []
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda batch: calls.append(1) or encode(batch))
    rng = np.random.default_rng(1)
    per_seed = PolicySampler(model).sample_agent_inputs(
        [make_agent_input(rng) for _ in range(2)], ["x", "y"], seeds=[0, 1], omegas=[0.5], mode="guided",
        num_samples=1, num_steps=2)
    assert len(calls) == 1 and len(per_seed) == 2 and per_seed[0].shape == (2, 1, 1, 8, 3)
    assert not np.allclose(per_seed[0], per_seed[1])
    assert scene_noise_seed(0, "x") != scene_noise_seed(0, "y")
