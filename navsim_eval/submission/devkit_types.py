"""Stand-ins for the two devkit classes a submission pickle stores (navsim_data.md §9).

Pickle records a class by ``__module__`` and ``__qualname__`` and restores an instance by filling its
``__dict__`` without calling ``__init__``. These stand-ins carry the devkit's paths and attribute names, so a
pickle written here unpickles as ``navsim.common.dataclasses.Trajectory`` holding a
``nuplan.planning.simulation.trajectory.trajectory_sampling.TrajectorySampling`` where the devkit is
installed, while writing needs neither package. They are used by the submission writer and loader only.
"""

from __future__ import annotations

import numpy as np

TRAJECTORY_MODULE = "navsim.common.dataclasses"
TRAJECTORY_NAME = "Trajectory"
SAMPLING_MODULE = "nuplan.planning.simulation.trajectory.trajectory_sampling"
SAMPLING_NAME = "TrajectorySampling"

NUM_POSES = 8
"""Poses per submitted trajectory, t = 0.5 ... 4.0 s (navsim_data.md §5, §9)."""
TIME_HORIZON_S = 4.0
"""Planning horizon of a submission [s] (navsim_data.md §9)."""
INTERVAL_LENGTH_S = 0.5
"""Time between submitted poses [s] (navsim_data.md §9)."""
POSE_DIM = 3
"""(x, y, heading) per pose."""


class TrajectorySampling:
    """Same path and attributes as nuPlan's TrajectorySampling: num_poses (int), time_horizon, interval_length."""

    def __init__(self, num_poses: int, time_horizon: float, interval_length: float):
        self.num_poses = int(num_poses)
        self.time_horizon = float(time_horizon)
        self.interval_length = float(interval_length)

    def __eq__(self, other: object) -> bool:
        return (
            type(other).__name__ == SAMPLING_NAME
            and getattr(other, "num_poses", None) == self.num_poses
            and getattr(other, "time_horizon", None) == self.time_horizon
            and getattr(other, "interval_length", None) == self.interval_length
        )

    def __hash__(self) -> int:
        return hash((self.num_poses, self.time_horizon, self.interval_length))

    def __repr__(self) -> str:
        return (
            f"TrajectorySampling(num_poses={self.num_poses}, time_horizon={self.time_horizon}, "
            f"interval_length={self.interval_length})"
        )


class Trajectory:
    """Same path and attributes as the devkit's Trajectory: poses (N, 3) and trajectory_sampling."""

    def __init__(self, poses: np.ndarray, trajectory_sampling: TrajectorySampling):
        self.poses = poses
        self.trajectory_sampling = trajectory_sampling

    def __repr__(self) -> str:
        return f"Trajectory(poses={np.asarray(self.poses).shape}, trajectory_sampling={self.trajectory_sampling!r})"


TrajectorySampling.__module__ = SAMPLING_MODULE
TrajectorySampling.__qualname__ = SAMPLING_NAME
Trajectory.__module__ = TRAJECTORY_MODULE
Trajectory.__qualname__ = TRAJECTORY_NAME

STANDIN_CLASSES = {
    (TRAJECTORY_MODULE, TRAJECTORY_NAME): Trajectory,
    (SAMPLING_MODULE, SAMPLING_NAME): TrajectorySampling,
}
"""Devkit class path -> stand-in class."""


def default_sampling() -> TrajectorySampling:
    """The sampling every NAVSIM submission uses: 8 poses over 4 s at 0.5 s."""
    return TrajectorySampling(NUM_POSES, TIME_HORIZON_S, INTERVAL_LENGTH_S)


def make_trajectory(poses: np.ndarray) -> Trajectory:
    """Wrap (8, 3) local poses as a devkit-shaped Trajectory (float32, headings wrapped to (-pi, pi])."""
    array = np.array(poses, dtype=np.float32)
    if array.shape != (NUM_POSES, POSE_DIM):
        raise ValueError(f"poses must have shape ({NUM_POSES}, {POSE_DIM}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("poses contain non-finite values")
    headings = array[:, 2].astype(np.float64)
    outside = (headings > np.pi) | (headings <= -np.pi)  # wrap only these: keeps in-range values bit-exact
    array[outside, 2] = np.arctan2(np.sin(headings[outside]), np.cos(headings[outside]))
    return Trajectory(array, default_sampling())
