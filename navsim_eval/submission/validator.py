"""Check a submission file against a split before upload (navsim_data.md §9 checklist).

Checks: readable with only submission globals; exact key set; metadata strings; list lengths; token sets
equal to the split's; class paths; poses (8, 3), float, and valid by the scorer's rule
(``navsim_eval.pdm.trajectory.validate_poses``: finite, positions within reach); at least one trajectory; sampling 8 poses / 4 s / 0.5 s;
no ``numpy._core`` reference; file name; file size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Optional, Union

import numpy as np

from navsim_eval.pdm.errors import TrajectoryError
from navsim_eval.pdm.trajectory import validate_poses
from navsim_eval.submission.devkit_types import (
    INTERVAL_LENGTH_S,
    NUM_POSES,
    POSE_DIM,
    SAMPLING_MODULE,
    SAMPLING_NAME,
    TIME_HORIZON_S,
    TRAJECTORY_MODULE,
    TRAJECTORY_NAME,
)
from navsim_eval.submission.errors import SubmissionError
from navsim_eval.submission.pickling import NUMPY_CORE_MARKER, loads_submission
from navsim_eval.submission.writer import (
    METADATA_KEYS,
    SUBMISSION_FILE_NAME,
    V1_KEYS,
    V1_PREDICTIONS_KEY,
    V2_FIRST_STAGE_KEY,
    V2_KEYS,
    V2_SECOND_STAGE_KEY,
)

PathLike = Union[str, Path]

MAX_LISTED = 5
"""How many offending tokens a report line names."""
MAX_SIZE_BYTES = 1 << 30
"""Size above which the file is suspicious (navtest with 3 seeds is a few MB)."""
V1_TEAM_NAME_PATTERN = re.compile(r"^<a href=\S+>.+</a>$")
"""v1 board rule: team_name = ``<a href=Link/to/repository>Method name</a>``."""


@dataclass
class ValidationIssue:
    severity: str  # "error" | "warning"
    message: str


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_submission`; ``ok`` is False when any error was found."""

    path: Path
    format: Optional[str] = None
    num_prediction_sets: int = 0
    num_trajectories: int = 0
    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(issue.severity == "error" for issue in self.issues)

    @property
    def errors(self) -> list[str]:
        return [issue.message for issue in self.issues if issue.severity == "error"]

    def error(self, message: str) -> None:
        self.issues.append(ValidationIssue("error", message))

    def warning(self, message: str) -> None:
        self.issues.append(ValidationIssue("warning", message))

    def to_text(self) -> str:
        lines = [
            f"submission: {self.path}",
            f"format: {self.format or 'unknown'}; prediction sets: {self.num_prediction_sets}; "
            f"trajectories: {self.num_trajectories}",
        ]
        lines += [f"  {issue.severity.upper()}: {issue.message}" for issue in self.issues]
        lines.append("RESULT: PASS" if self.ok else f"RESULT: FAIL ({len(self.errors)} error(s))")
        return "\n".join(lines)


def _listed(tokens: Collection[str]) -> str:
    shown = sorted(tokens)[:MAX_LISTED]
    more = f" and {len(tokens) - len(shown)} more" if len(tokens) > len(shown) else ""
    return ", ".join(shown) + more


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_trajectory(token: str, trajectory: Any, where: str, report: ValidationReport) -> None:
    expected = f"{TRAJECTORY_MODULE}.{TRAJECTORY_NAME}"
    if _class_path(trajectory) != expected:
        report.error(f"{where}, token {token}: value is {_class_path(trajectory)}, expected {expected}")
        return
    state = vars(trajectory)
    poses = state.get("poses")
    if not isinstance(poses, np.ndarray):
        report.error(f"{where}, token {token}: poses is {type(poses).__name__}, expected a numpy array")
    elif poses.shape != (NUM_POSES, POSE_DIM):
        report.error(f"{where}, token {token}: poses shape {poses.shape}, expected ({NUM_POSES}, {POSE_DIM})")
    elif poses.dtype.kind != "f":
        report.error(f"{where}, token {token}: poses dtype {poses.dtype}, expected float")
    else:
        try:  # the scorer's own rule: finite values, positions within MAX_ABS_POSITION_M of the ego
            validate_poses(poses, token=token)
        except TrajectoryError as error:
            report.error(f"{where}: {error}")
            return
        if np.any(np.abs(poses[:, 2]) > math.pi + 1e-6):
            report.warning(f"{where}, token {token}: headings outside (-pi, pi]")
    sampling = state.get("trajectory_sampling")
    expected_sampling = f"{SAMPLING_MODULE}.{SAMPLING_NAME}"
    if _class_path(sampling) != expected_sampling:
        report.error(
            f"{where}, token {token}: trajectory_sampling is {_class_path(sampling)}, expected {expected_sampling}"
        )
        return
    values = vars(sampling)
    num_poses = values.get("num_poses")
    if type(num_poses) is not int or num_poses != NUM_POSES:
        report.error(f"{where}, token {token}: sampling num_poses {num_poses!r}, expected int {NUM_POSES}")
    for name, target in (("time_horizon", TIME_HORIZON_S), ("interval_length", INTERVAL_LENGTH_S)):
        value = values.get(name)
        if not isinstance(value, (int, float)) or not math.isclose(float(value), target):
            report.error(f"{where}, token {token}: sampling {name} {value!r}, expected {target}")


def _check_prediction_set(
    predictions: Any, where: str, expected_tokens: Optional[Collection[str]], report: ValidationReport
) -> None:
    if not isinstance(predictions, dict):
        report.error(f"{where} is {type(predictions).__name__}, expected a dict {{token: Trajectory}}")
        return
    report.num_trajectories += len(predictions)
    if expected_tokens is not None:
        expected = set(expected_tokens)
        missing, extra = expected - set(predictions), set(predictions) - expected
        if missing:
            report.error(f"{where}: {len(missing)} split token(s) missing: {_listed(missing)}")
        if extra:
            report.error(f"{where}: {len(extra)} token(s) not in the split: {_listed(extra)}")
    for token, trajectory in predictions.items():
        if not isinstance(token, str):
            report.error(f"{where}: key {token!r} is not a string token")
            continue
        _check_trajectory(token, trajectory, where, report)


def _check_prediction_list(
    submission: dict,
    key: str,
    exact_length: Optional[int],
    expected: Optional[Collection[str]],
    report: ValidationReport,
) -> None:
    value = submission[key]
    if not isinstance(value, list):
        report.error(f"{key!r} is {type(value).__name__}, expected a list of dicts")
        return
    if not value:
        report.error(f"{key!r} is empty")
    elif exact_length is not None and len(value) != exact_length:
        report.error(f"{key!r} has {len(value)} entries, expected {exact_length}")
    report.num_prediction_sets += len(value)
    for index, predictions in enumerate(value):
        _check_prediction_set(predictions, f"{key}[{index}]", expected, report)


def validate_submission(
    path: PathLike,
    expected_tokens: Optional[Collection[str]] = None,
    expected_second_stage_tokens: Optional[Collection[str]] = None,
    expected_format: Optional[str] = None,
) -> ValidationReport:
    """Validate a submission file. ``expected_tokens``: the split's (stage-1) tokens; None skips token checks."""
    path = Path(path)
    report = ValidationReport(path=path)
    if not path.is_file():
        report.error("file not found")
        return report
    if path.name != SUBMISSION_FILE_NAME:
        report.warning(f"file is named {path.name!r}; the leaderboards expect {SUBMISSION_FILE_NAME!r}")
    data = path.read_bytes()
    if len(data) > MAX_SIZE_BYTES:
        report.warning(f"file is {len(data) / 1e6:.0f} MB, unusually large")
    if NUMPY_CORE_MARKER in data:
        report.error("pickle references numpy._core (written under NumPy 2; the devkit's NumPy 1.x cannot load it)")
    try:
        submission, _ = loads_submission(data, path)
    except SubmissionError as error:
        report.error(str(error))
        return report
    if not isinstance(submission, dict):
        report.error(f"top level is {type(submission).__name__}, expected a dict")
        return report

    if V1_PREDICTIONS_KEY in submission:
        report.format, expected_keys = "v1", V1_KEYS
    elif V2_FIRST_STAGE_KEY in submission or V2_SECOND_STAGE_KEY in submission:
        report.format, expected_keys = "v2", V2_KEYS
    else:
        report.error(f"no prediction key: expected {V1_PREDICTIONS_KEY!r} (v1) or {V2_FIRST_STAGE_KEY!r} (v2)")
        return report
    if expected_format is not None and report.format != expected_format:
        report.error(f"submission is {report.format}, expected {expected_format}")
    missing_keys, extra_keys = expected_keys - set(submission), set(submission) - expected_keys
    if missing_keys:
        report.error(f"missing key(s): {sorted(missing_keys)}")
    if extra_keys:
        report.error(f"unexpected key(s): {sorted(map(str, extra_keys))}")
    for key in METADATA_KEYS:
        if key in submission and (not isinstance(submission[key], str) or not submission[key].strip()):
            report.error(f"metadata {key!r} must be a non-empty string, got {submission[key]!r}")
    team_name = submission.get("team_name")
    if report.format == "v1" and isinstance(team_name, str) and not V1_TEAM_NAME_PATTERN.match(team_name):
        report.warning("team_name is not '<a href=Link/to/repository>Method name</a>' as the v1 board requires")

    if report.format == "v1":
        _check_prediction_list(submission, V1_PREDICTIONS_KEY, None, expected_tokens, report)
        sets = submission[V1_PREDICTIONS_KEY]
        if expected_tokens is None and isinstance(sets, list) and all(isinstance(p, dict) for p in sets):
            for index, predictions in enumerate(sets[1:], start=1):
                if set(predictions) != set(sets[0]):
                    report.error(f"{V1_PREDICTIONS_KEY}[{index}] covers other tokens than {V1_PREDICTIONS_KEY}[0]")
    else:
        if V2_FIRST_STAGE_KEY in submission:
            _check_prediction_list(submission, V2_FIRST_STAGE_KEY, 1, expected_tokens, report)
        if V2_SECOND_STAGE_KEY in submission:
            _check_prediction_list(submission, V2_SECOND_STAGE_KEY, 1, expected_second_stage_tokens, report)
    if report.num_trajectories == 0 and report.ok:  # (an empty list was reported above)
        report.error("the submission holds no trajectories")
    return report
