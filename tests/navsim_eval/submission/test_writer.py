"""Submission building, metadata and multi-seed merging."""

from __future__ import annotations

import numpy as np
import pytest

from navsim_eval.submission import (
    SubmissionError,
    SubmissionMetadata,
    build_v1_submission,
    build_v2_submission,
    load_submission,
    merge_submission_files,
    merge_submissions,
    submission_format,
    write_submission,
)

META = SubmissionMetadata("<a href=https://example.org>M</a>", "A", "a@example.org", "I", "C")
TOKENS = ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")


def _seed(value: float, tokens=TOKENS) -> dict:
    return {token: np.full((8, 3), value + i) for i, token in enumerate(tokens)}


def test_v1_has_devkit_keys_and_one_dict_per_seed():
    submission = build_v1_submission([_seed(0.0), _seed(1.0)], META)
    assert set(submission) == {"team_name", "authors", "email", "institution", "country / region", "predictions"}
    assert submission["country / region"] == "C"
    assert len(submission["predictions"]) == 2
    trajectory = submission["predictions"][1][TOKENS[1]]
    assert trajectory.poses.dtype == np.float32 and trajectory.poses[0, 0] == 2.0
    assert submission_format(submission) == "v1"


def test_headings_are_wrapped():
    poses = np.zeros((8, 3))
    poses[:, 2] = 3 * np.pi / 2
    trajectory = build_v1_submission([{TOKENS[0]: poses}], META)["predictions"][0][TOKENS[0]]
    np.testing.assert_allclose(trajectory.poses[:, 2], -np.pi / 2, atol=1e-6)


@pytest.mark.parametrize(
    "poses, message",
    [(np.zeros((7, 3)), r"shape \(8, 3\)"), (np.full((8, 3), np.nan), "non-finite"), (np.zeros((8, 2)), "shape")],
)
def test_bad_poses_name_the_token(poses, message):
    with pytest.raises(SubmissionError, match=f"token 'bbbbbbbbbbbbbbbb'.*{message}"):
        build_v1_submission([{TOKENS[0]: np.zeros((8, 3)), TOKENS[1]: poses}], META)


def test_seeds_must_cover_the_same_tokens():
    with pytest.raises(SubmissionError, match="same tokens"):
        build_v1_submission([_seed(0.0), _seed(0.0, tokens=TOKENS[:1])], META)


def test_metadata_fields_must_be_non_empty():
    with pytest.raises(SubmissionError, match="email"):
        SubmissionMetadata("t", "a", " ", "i", "c")
    assert SubmissionMetadata.from_mapping({**META.to_dict()}) == META
    assert SubmissionMetadata.linked("M", "https://example.org", authors="A", email="a@example.org",
                                     institution="I", country_region="C") == META


def test_v2_keys_and_disjoint_stages():
    submission = build_v2_submission({TOKENS[0]: np.zeros((8, 3))}, {TOKENS[1] + "x": np.zeros((8, 3))}, META)
    assert set(submission) - set(META.to_dict()) == {"first_stage_predictions", "second_stage_predictions"}
    assert submission_format(submission) == "v2"
    with pytest.raises(SubmissionError, match="both stages"):
        build_v2_submission({TOKENS[0]: np.zeros((8, 3))}, {TOKENS[0]: np.zeros((8, 3))}, META)


def test_merge_seed_files(tmp_path):
    paths = [
        write_submission(build_v1_submission([_seed(float(seed))], META), tmp_path / f"seed{seed}" / "submission.pkl")
        for seed in range(3)
    ]
    merged_path = merge_submission_files(paths, tmp_path / "merged")
    merged, _ = load_submission(merged_path)
    assert merged_path.name == "submission.pkl"
    assert len(merged["predictions"]) == 3
    assert [p[TOKENS[0]].poses[0, 0] for p in merged["predictions"]] == [0.0, 1.0, 2.0]
    assert all(set(p) == set(TOKENS) for p in merged["predictions"])
    assert merged["team_name"] == META.team_name


def test_merge_rejects_mismatches():
    one = build_v1_submission([_seed(0.0)], META)
    other_tokens = build_v1_submission([_seed(0.0, tokens=TOKENS[:1])], META)
    with pytest.raises(SubmissionError, match="same tokens"):
        merge_submissions([one, other_tokens])
    other_meta = build_v1_submission([_seed(0.0)], SubmissionMetadata("x", "A", "a@example.org", "I", "C"))
    with pytest.raises(SubmissionError, match="other metadata"):
        merge_submissions([one, other_meta])
    assert merge_submissions([one, other_meta], metadata=META)["team_name"] == META.team_name
    v2 = build_v2_submission({TOKENS[0]: np.zeros((8, 3))}, {TOKENS[1]: np.zeros((8, 3))}, META)
    with pytest.raises(SubmissionError, match="not a v1"):
        merge_submissions([one, v2])
