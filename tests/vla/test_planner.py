"""DipolePlanner: the NAVSIM-agent-shaped wrapper."""

import numpy as np
import pytest

from vla import VLAInputError
from vla.planner import DipolePlanner

from vla.testing import make_agent_input, perturb, tiny_model


def test_planner_returns_navsim_poses():
    model = tiny_model("tiny-hf-vlm")
    perturb(model.head)
    planner = DipolePlanner(model, omega=0.5, num_steps=3, seed=0)
    rng = np.random.default_rng(0)
    inputs = [make_agent_input(rng) for _ in range(3)]
    poses = planner.compute_trajectory(inputs[0])
    assert poses.shape == (8, 3) and poses.dtype == np.float32 and np.isfinite(poses).all()
    batch = planner.plan(inputs)
    assert batch.shape == (3, 8, 3)
    np.testing.assert_allclose(batch[0], poses, rtol=1e-4, atol=1e-4)  # same seed, same scene
    base = DipolePlanner(model, num_steps=3, mode="base", seed=0).compute_trajectory(inputs[0])
    assert not np.allclose(base, poses)
    sensors = planner.sensor_config()
    assert sensors.cam_l0 == [3] and sensors.cam_f0 == [3] and sensors.cam_r0 == [3]
    assert sensors.cam_b0 is False and sensors.lidar_pc is False
    with pytest.raises(VLAInputError, match="omega"):
        DipolePlanner(model, omega=[0.0, 1.0])
    with pytest.raises(VLAInputError, match="agent_input"):
        planner.compute_trajectory(inputs)
