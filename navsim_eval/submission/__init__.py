"""NAVSIM leaderboard submissions: devkit-compatible pickles, seed merging and validation."""

from navsim_eval.submission.devkit_types import Trajectory, TrajectorySampling, default_sampling, make_trajectory
from navsim_eval.submission.errors import SubmissionError, UnsafePickleError
from navsim_eval.submission.pickling import dump_submission, dumps_submission, load_submission, loads_submission
from navsim_eval.submission.validator import ValidationReport, validate_submission
from navsim_eval.submission.writer import (
    SUBMISSION_FILE_NAME,
    SubmissionMetadata,
    build_predictions,
    build_v1_submission,
    build_v2_submission,
    merge_submission_files,
    merge_submissions,
    submission_format,
    write_submission,
)

__all__ = [
    "SUBMISSION_FILE_NAME",
    "SubmissionError",
    "SubmissionMetadata",
    "Trajectory",
    "TrajectorySampling",
    "UnsafePickleError",
    "ValidationReport",
    "build_predictions",
    "build_v1_submission",
    "build_v2_submission",
    "default_sampling",
    "dump_submission",
    "dumps_submission",
    "load_submission",
    "loads_submission",
    "make_trajectory",
    "merge_submission_files",
    "merge_submissions",
    "submission_format",
    "validate_submission",
    "write_submission",
]
