"""The validator catches each malformed case and passes a good file."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from navsim_eval.submission import (
    SubmissionMetadata,
    build_v1_submission,
    build_v2_submission,
    dumps_submission,
    validate_submission,
    write_submission,
)
from navsim_eval.submission.devkit_types import TrajectorySampling
from navsim_eval.submission.pickling import _standin_modules_visible

META = SubmissionMetadata("<a href=https://example.org>M</a>", "A", "a@example.org", "I", "C")
TOKENS = ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"]
STAGE_TWO = ["aaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaa2"]


def _v1(seeds: int = 1) -> dict:
    return build_v1_submission([{t: np.zeros((8, 3)) for t in TOKENS} for _ in range(seeds)], META)


def _write(tmp_path, submission: dict, name: str = "submission.pkl"):
    path = tmp_path / name
    path.write_bytes(dumps_submission(submission))
    return path


def test_good_v1_and_v2_pass(tmp_path):
    report = validate_submission(write_submission(_v1(seeds=3), tmp_path / "v1"), TOKENS)
    assert report.ok, report.to_text()
    assert report.format == "v1" and report.num_prediction_sets == 3 and report.num_trajectories == 9
    assert "RESULT: PASS" in report.to_text()
    v2 = build_v2_submission({t: np.zeros((8, 3)) for t in TOKENS}, {t: np.zeros((8, 3)) for t in STAGE_TWO}, META)
    report = validate_submission(write_submission(v2, tmp_path / "v2"), TOKENS, STAGE_TWO, expected_format="v2")
    assert report.ok, report.to_text()


def _mutate_first(submission: dict, **changes) -> dict:
    trajectory = submission["predictions"][0][TOKENS[0]]
    for name, value in changes.items():
        setattr(trajectory, name, value)
    return submission


def _set_sampling(**values):
    sampling = TrajectorySampling(8, 4.0, 0.5)
    sampling.__dict__.update(values)
    return sampling


MALFORMED = {
    "missing token": (lambda: build_v1_submission([{t: np.zeros((8, 3)) for t in TOKENS[:2]}], META),
                      "missing: cccccccccccccccc"),
    "extra token": (lambda: build_v1_submission([{t: np.zeros((8, 3)) for t in TOKENS + ["dddddddddddddddd"]}], META),
                    "not in the split: dddddddddddddddd"),
    "poses shape": (lambda: _mutate_first(_v1(), poses=np.zeros((6, 3), np.float32)), r"shape \(6, 3\)"),
    "poses non-finite": (lambda: _mutate_first(_v1(), poses=np.full((8, 3), np.inf, np.float32)), "non-finite"),
    "position the scorer rejects": (
        lambda: _mutate_first(_v1(), poses=np.array([[3e8, 0.0, 0.0]] * 8, np.float32)), r"position beyond 100000 m of the ego"),
    "poses not an array": (lambda: _mutate_first(_v1(), poses=[[0.0] * 3] * 8), "expected a numpy array"),
    "sampling horizon": (lambda: _mutate_first(_v1(), trajectory_sampling=_set_sampling(time_horizon=5.0)),
                         "time_horizon 5.0"),
    "sampling interval": (lambda: _mutate_first(_v1(), trajectory_sampling=_set_sampling(interval_length=0.25)),
                          "interval_length 0.25"),
    "sampling num_poses float": (lambda: _mutate_first(_v1(), trajectory_sampling=_set_sampling(num_poses=8.0)),
                                 "num_poses 8.0"),
    "missing metadata": (lambda: {k: v for k, v in _v1().items() if k != "country / region"}, "missing key"),
    "empty metadata": (lambda: {**_v1(), "email": ""}, "'email' must be a non-empty string"),
    "extra key": (lambda: {**_v1(), "notes": "x"}, "unexpected key"),
    "value class": (lambda: {**_v1(), "predictions": [{t: {"poses": np.zeros((8, 3))} for t in TOKENS}]},
                    "value is builtins.dict"),
    "predictions not a list": (lambda: {**_v1(), "predictions": _v1()["predictions"][0]}, "expected a list"),
    "empty predictions": (lambda: {**_v1(), "predictions": []}, "'predictions' is empty"),
    "no predictions key": (lambda: {k: v for k, v in _v1().items() if k != "predictions"}, "no prediction key"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_cases_fail_with_a_clear_message(tmp_path, case):
    build, message = MALFORMED[case]
    report = validate_submission(_write(tmp_path, build()), TOKENS)
    assert not report.ok
    text = report.to_text()
    assert "RESULT: FAIL" in text
    assert any(re.search(message, error) for error in report.errors), text


def test_a_submission_without_trajectories_fails(tmp_path):
    report = validate_submission(_write(tmp_path, {**_v1(), "predictions": [{}]}), None)
    assert not report.ok and "the submission holds no trajectories" in report.errors


def test_v2_stage_lists_must_hold_one_dict(tmp_path):
    v2 = build_v2_submission({t: np.zeros((8, 3)) for t in TOKENS}, {t: np.zeros((8, 3)) for t in STAGE_TWO}, META)
    v2["second_stage_predictions"] = v2["second_stage_predictions"] * 2
    report = validate_submission(_write(tmp_path, v2), TOKENS, STAGE_TWO)
    assert any("has 2 entries, expected 1" in e for e in report.errors), report.to_text()
    one = {STAGE_TWO[0]: v2["first_stage_predictions"][0][TOKENS[0]]}
    missing_stage_two = {**v2, "second_stage_predictions": [one]}
    report = validate_submission(_write(tmp_path, missing_stage_two), TOKENS, STAGE_TWO)
    assert any("missing: aaaaaaaaaaaaaaaa2" in e for e in report.errors), report.to_text()
    report = validate_submission(_write(tmp_path, _v1()), TOKENS, expected_format="v2")
    assert any("expected v2" in e for e in report.errors)


def test_seeds_with_different_tokens_fail_without_a_split(tmp_path):
    submission = _v1(seeds=2)
    del submission["predictions"][1][TOKENS[2]]
    report = validate_submission(_write(tmp_path, submission))
    assert any("covers other tokens" in e for e in report.errors), report.to_text()


def test_numpy_core_reference_fails(tmp_path):
    with _standin_modules_visible():
        data = pickle.dumps(_v1(), protocol=4)  # plain pickle under NumPy 2: arrays via numpy._core
    path = tmp_path / "submission.pkl"
    path.write_bytes(data)
    report = validate_submission(path, TOKENS)
    assert any("numpy._core" in e for e in report.errors), report.to_text()


def test_unreadable_missing_and_misnamed_files(tmp_path):
    garbage = tmp_path / "submission.pkl"
    garbage.write_bytes(b"not a pickle")
    assert any("not a readable pickle" in e for e in validate_submission(garbage, TOKENS).errors)
    assert any("file not found" in e for e in validate_submission(tmp_path / "nope.pkl", TOKENS).errors)
    misnamed = _write(tmp_path, _v1(), name="mine.pkl")
    report = validate_submission(misnamed, TOKENS)
    assert report.ok and any("leaderboards expect" in i.message for i in report.issues)


def test_v1_team_name_format_is_a_warning(tmp_path):
    submission = {**_v1(), "team_name": "plain name"}
    report = validate_submission(_write(tmp_path, submission), TOKENS)
    assert report.ok and any("<a href=" in i.message for i in report.issues if i.severity == "warning")
