"""Parameters of the PDM-Closed reference planner (spec pdm_score.md §3.8)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IDMConfig:
    """Intelligent-driver-model policies (one per speed-limit fraction), spec §3.8."""

    speed_limit_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    fallback_target_velocity: float = 15.0  # [m/s] when the starting lane has no speed limit
    min_gap_to_lead_agent: float = 1.0  # [m]
    headway_time: float = 1.5  # [s]
    accel_max: float = 1.5  # [m/s^2]
    decel_max: float = 3.0  # [m/s^2]
    acceleration_exponent: float = 10.0


@dataclass(frozen=True)
class PDMClosedConfig:
    """PDM-Closed planner configuration (spec §3.8)."""

    idm: IDMConfig = IDMConfig()
    lateral_offsets: tuple[float, ...] = (-1.0, 1.0)  # [m] parallel copies of the centerline
    dt: float = 0.1  # [s]
    proposal_steps: int = 40  # 4 s proposals (41 states)
    trajectory_steps: int = 50  # 5 s trajectory (51 states)
    leading_agent_update_interval: int = 2  # leading agents recomputed at even steps
    observation_sample_interval: int = 2  # forecast occupancy maps every 2 steps
    map_radius: float = 100.0  # [m] objects considered around the ego box centre
    max_vehicles: int = 50
    max_pedestrians: int = 25
    max_bicycles: int = 10
    max_static_objects: int = 50
