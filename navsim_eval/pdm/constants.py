"""Named constants of the PDM scorer (values from specs/pdm_score.md; section cited per constant)."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from data_pipelines.types import AGENT_TYPES, STATIC_OBJECT_TYPES  # noqa: F401  (re-exported, spec §1.3)
from navsim_eval import names as metric_names


class StateIndex(IntEnum):
    """Components of the 11-vector ego state (spec §1.2); all rear axle, velocities/accelerations ego frame."""

    X = 0
    Y = 1
    HEADING = 2
    VELOCITY_X = 3
    VELOCITY_Y = 4
    ACCELERATION_X = 5
    ACCELERATION_Y = 6
    STEERING_ANGLE = 7
    STEERING_RATE = 8
    ANGULAR_VELOCITY = 9
    ANGULAR_ACCELERATION = 10


STATE_DIM = len(StateIndex)

# --- Vehicle: Chrysler Pacifica (spec §1.2) ---------------------------------------------------------------
EGO_WIDTH = 2.297
EGO_FRONT_LENGTH = 4.049  # rear axle -> front bumper
EGO_REAR_LENGTH = 1.127  # rear axle -> rear bumper
EGO_LENGTH = EGO_FRONT_LENGTH + EGO_REAR_LENGTH  # 5.176
WHEEL_BASE = 3.089
REAR_AXLE_TO_CENTER = EGO_LENGTH / 2.0 - EGO_REAR_LENGTH  # 1.461
EGO_HALF_LENGTH = EGO_LENGTH / 2.0
EGO_HALF_WIDTH = EGO_WIDTH / 2.0

# --- Time grid (spec notation, §4) --------------------------------------------------------------------------
SIM_DT = 0.1  # 10 Hz step [s]
NUM_SIM_STEPS = 40  # 4 s horizon -> 41 states
NUM_SIM_STATES = NUM_SIM_STEPS + 1
SUBMISSION_NUM_POSES = 8  # poses at 0.5 ... 4.0 s (§4.1)
SUBMISSION_INTERVAL = 0.5  # [s]
US_PER_S = 1e6

# --- Tracker and bicycle model (spec §5) ---------------------------------------------------------------------
TRACKING_HORIZON = 10  # N
JERK_PENALTY = 1e-4  # velocity-fit regulariser on accel first differences
CURVATURE_PENALTY = 1e-10  # on initial curvature
CURVATURE_RATE_PENALTY = 1e-2  # on each curvature rate
LON_Q = 10.0
LON_R = 1.0
LAT_Q = np.array([1.0, 10.0, 0.0])  # (lateral error, heading error, steering angle)
LAT_R = 1.0
STOPPING_PROPORTIONAL_GAIN = 0.5
STOPPING_VELOCITY = 0.2  # [m/s]
ACCEL_TIME_CONSTANT = 0.2  # [s]
STEERING_TIME_CONSTANT = 0.05  # [s]
MAX_STEERING_ANGLE = np.pi / 3.0

# --- Scoring (spec §7) ------------------------------------------------------------------------------------------
STOPPED_SPEED_THRESHOLD = 5e-2  # NC: ego / track considered stopped [m/s] (§7.1)
TTC_STOPPED_SPEED_THRESHOLD = 5e-3  # TTC: ego speed below which nothing is checked [m/s] (§7.6)
TTC_LOOKAHEAD_STEPS = (0, 3, 6, 9)  # (§7.6)
AHEAD_ANGLE_DEG = 30.0  # (§7.6)
BEHIND_ANGLE_DEG = 150.0  # (§7.1, §7.6)
DDC_HORIZON_STEPS = 10  # window of 11 steps (§7.3)
DDC_COMPLIANCE_THRESHOLD = 2.0  # [m]
DDC_VIOLATION_THRESHOLD = 6.0  # [m]
PROGRESS_DISTANCE_THRESHOLD = 5.0  # [m] (§7.5)
LANE_KEEPING_DEVIATION = 0.5  # [m] (§7.9)
LANE_KEEPING_HORIZON_STEPS = int(np.ceil(2.0 / SIM_DT))  # 20 (§7.9)
AGENT_COLLISION_SCORE = 0.0  # at-fault NC value for agents (§7.1)
STATIC_COLLISION_SCORE = 0.5  # at-fault NC value for static objects (§7.1)

V1_OBSERVATION_STEPS = 51  # 0...5 s (§3.5)
V2_OBSERVATION_STEPS = 41  # 0...4 s (§3.5)
V1_OBSERVATION_FRAMES = 10
V2_OBSERVATION_FRAMES = 8
V1_TTC_STEPS = 41  # k = 0...40 (§7.6)
V2_TTC_STEPS = 32  # k = 0...31 (§7.6)
FRAMES_PER_STEP = 5  # 2 Hz frames vs 10 Hz steps (§3.6)
# Observation frame i after the current one is placed at i * 0.5 s whatever its logged timestamp says
# (§3.5: the devkit's relative times are index * resolution step, not timestamp differences).
OBSERVATION_FRAME_INTERVAL_S = 0.5

# --- Aggregation weights (§8): from the metric table (navsim_eval/names.py) -------------------------------------
V1_WEIGHTS = metric_names.weights("v1")
V2_WEIGHTS = metric_names.weights("v2")
V2_EC_WEIGHT = metric_names.paired_weight("v2")

# --- Extended comfort (§7.10) -----------------------------------------------------------------------------------
EC_MAX_PREVIOUS_GAP_S = 0.55
EC_OVERLAP_STEPS = 5

RED_LIGHT_TYPE = "red_light"
RED_LIGHT_PREFIX = "red_light_"

VERSIONS = metric_names.VERSIONS


def check_version(version: str) -> str:
    """The version if it is one of VERSIONS, else UnknownVersionError (a ScoringError and ValueError)."""
    from navsim_eval.pdm.errors import UnknownVersionError

    if version not in VERSIONS:
        raise UnknownVersionError(f"unknown metric version {version!r}; expected one of {VERSIONS}")
    return version

# --- Scene type (§8.3, §7.10) ---------------------------------------------------------------------------------------
# v2 synthetic (second-stage) scenes are recognised by their 17-character token (navsim_data.md §6); they
# have no logged future (no human filter) and are not paired for two-frame extended comfort.
SYNTHETIC_TOKEN_LENGTH = 17


def is_synthetic_token(token: str) -> bool:
    """True for a v2 synthetic scene token (17 characters), False for an original log scene."""
    return len(str(token)) == SYNTHETIC_TOKEN_LENGTH
