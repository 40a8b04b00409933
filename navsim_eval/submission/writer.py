"""Build, write and merge NAVSIM leaderboard submissions (navsim_data.md §9).

v1 (navtest board): metadata + ``predictions``, a list with one ``{token: Trajectory}`` dict per seed.
v2 (two-stage boards): metadata + ``first_stage_predictions`` and ``second_stage_predictions``, each a
list with one dict. Trajectories are the devkit-path stand-ins of :mod:`devkit_types`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from navsim_eval.submission.devkit_types import Trajectory, make_trajectory
from navsim_eval.submission.errors import SubmissionError
from navsim_eval.submission.pickling import dump_submission, load_submission

PathLike = Union[str, Path]

SUBMISSION_FILE_NAME = "submission.pkl"
"""The file name the leaderboards expect."""
COUNTRY_KEY = "country / region"
"""The devkit's metadata key, spaces and slash included."""
METADATA_KEYS = ("team_name", "authors", "email", "institution", COUNTRY_KEY)
V1_PREDICTIONS_KEY = "predictions"
V2_FIRST_STAGE_KEY = "first_stage_predictions"
V2_SECOND_STAGE_KEY = "second_stage_predictions"
V1_KEYS = frozenset(METADATA_KEYS + (V1_PREDICTIONS_KEY,))
V2_KEYS = frozenset(METADATA_KEYS + (V2_FIRST_STAGE_KEY, V2_SECOND_STAGE_KEY))


@dataclass(frozen=True)
class SubmissionMetadata:
    """Who submits. On the v1 board team_name must be ``<a href=REPO_URL>METHOD</a>``."""

    team_name: str
    authors: str
    email: str
    institution: str
    country_region: str

    def __post_init__(self) -> None:
        for name in ("team_name", "authors", "email", "institution", "country_region"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SubmissionError(f"metadata field {name!r} must be a non-empty string, got {value!r}")

    @classmethod
    def linked(cls, method: str, repository_url: str, **fields: str) -> "SubmissionMetadata":
        """Metadata whose team_name links the method name to its code, as the v1 board requires."""
        return cls(team_name=f"<a href={repository_url}>{method}</a>", **fields)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "SubmissionMetadata":
        """From a submission dict or a config mapping (``country / region``, ``country_region`` or ``country``)."""
        country = next((mapping[k] for k in (COUNTRY_KEY, "country_region", "country") if k in mapping), None)
        return cls(
            team_name=mapping.get("team_name"),
            authors=mapping.get("authors"),
            email=mapping.get("email"),
            institution=mapping.get("institution"),
            country_region=country,
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "team_name": self.team_name,
            "authors": self.authors,
            "email": self.email,
            "institution": self.institution,
            COUNTRY_KEY: self.country_region,
        }


def build_predictions(poses_by_token: Mapping[str, np.ndarray]) -> dict[str, Trajectory]:
    """``{token: (8, 3) poses}`` -> ``{token: Trajectory}``; a bad entry raises naming its token."""
    predictions = {}
    for token, poses in poses_by_token.items():
        if isinstance(poses, Trajectory):
            poses = poses.poses
        try:
            predictions[str(token)] = make_trajectory(np.asarray(poses))
        except ValueError as error:
            raise SubmissionError(str(error), token=str(token)) from error
    if not predictions:
        raise SubmissionError("no predictions")
    return predictions


def _check_same_tokens(prediction_sets: Sequence[Mapping[str, Any]], what: str) -> None:
    reference = set(prediction_sets[0])
    for index, predictions in enumerate(prediction_sets[1:], start=1):
        tokens = set(predictions)
        if tokens != reference:
            missing = sorted(reference - tokens)[:5]
            extra = sorted(tokens - reference)[:5]
            raise SubmissionError(
                f"{what} {index} covers other tokens than {what} 0 (missing e.g. {missing}, extra e.g. {extra}); "
                "every seed must cover exactly the same tokens"
            )


def build_v1_submission(
    predictions_per_seed: Sequence[Mapping[str, np.ndarray]], metadata: SubmissionMetadata
) -> dict[str, Any]:
    """v1 navtest submission: one prediction dict per seed, identical token sets."""
    if not predictions_per_seed:
        raise SubmissionError("a v1 submission needs at least one prediction set")
    built = [build_predictions(seed_predictions) for seed_predictions in predictions_per_seed]
    _check_same_tokens(built, "seed")
    return {**metadata.to_dict(), V1_PREDICTIONS_KEY: built}


def build_v2_submission(
    first_stage: Mapping[str, np.ndarray], second_stage: Mapping[str, np.ndarray], metadata: SubmissionMetadata
) -> dict[str, Any]:
    """v2 two-stage submission: one dict of stage-1 and one of stage-2 predictions."""
    first, second = build_predictions(first_stage), build_predictions(second_stage)
    overlap = sorted(set(first) & set(second))
    if overlap:
        raise SubmissionError(f"tokens appear in both stages, e.g. {overlap[:5]}")
    return {**metadata.to_dict(), V2_FIRST_STAGE_KEY: [first], V2_SECOND_STAGE_KEY: [second]}


def submission_format(submission: Mapping[str, Any]) -> str:
    """``"v1"`` or ``"v2"`` from the prediction keys."""
    if V1_PREDICTIONS_KEY in submission:
        return "v1"
    if V2_FIRST_STAGE_KEY in submission or V2_SECOND_STAGE_KEY in submission:
        return "v2"
    raise SubmissionError(f"no prediction key ({V1_PREDICTIONS_KEY!r} or {V2_FIRST_STAGE_KEY!r})")


def write_submission(submission: Mapping[str, Any], path: PathLike) -> Path:
    """Write a submission dict; a directory path gets ``submission.pkl`` inside it."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / SUBMISSION_FILE_NAME
    return dump_submission(dict(submission), path)


def merge_submissions(
    submissions: Sequence[Mapping[str, Any]], metadata: Optional[SubmissionMetadata] = None
) -> dict[str, Any]:
    """Concatenate the ``predictions`` lists of several v1 submissions (one per seed) into one.

    Token sets must be identical (the devkit's merge asserts the same). Metadata: ``metadata`` if given,
    else the first submission's, which must then agree with every other one.
    """
    if not submissions:
        raise SubmissionError("nothing to merge")
    for index, submission in enumerate(submissions):
        if submission_format(submission) != "v1":
            raise SubmissionError(f"submission {index} is not a v1 submission; only v1 files hold several seeds")
    if metadata is None:
        metadata = SubmissionMetadata.from_mapping(submissions[0])
        for index, submission in enumerate(submissions[1:], start=1):
            if SubmissionMetadata.from_mapping(submission) != metadata:
                raise SubmissionError(f"submission {index} has other metadata than submission 0; pass metadata")
    merged = [predictions for submission in submissions for predictions in submission[V1_PREDICTIONS_KEY]]
    _check_same_tokens(merged, "prediction set")
    return {**metadata.to_dict(), V1_PREDICTIONS_KEY: merged}


def merge_submission_files(
    paths: Sequence[PathLike], out_path: PathLike, metadata: Optional[SubmissionMetadata] = None
) -> Path:
    """Read v1 submission files, merge them with :func:`merge_submissions`, write the result."""
    loaded = []
    for path in paths:
        submission, _ = load_submission(path)
        if not isinstance(submission, dict):
            raise SubmissionError("top level is not a dict", path=path)
        loaded.append(submission)
    return write_submission(merge_submissions(loaded, metadata), out_path)
