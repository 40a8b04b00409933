"""Errors of the evaluation harness. Each message names the file, token or planner concerned."""

from __future__ import annotations


class EvaluationError(Exception):
    """Base class of evaluation errors (bad configuration, unreadable results, failed planner)."""


class ResultsFileError(EvaluationError):
    """A per-token results CSV is unreadable or has a foreign column layout."""

    def __init__(self, path, reason: str):
        self.path = path
        super().__init__(f"results file {path}: {reason}")


class PlannerError(EvaluationError):
    """A planner could not produce a trajectory for a token."""

    def __init__(self, planner: str, token: str, reason: str):
        self.planner = planner
        self.token = token
        super().__init__(f"planner {planner!r}, token {token!r}: {reason}")


class TwoStageError(EvaluationError):
    """Two-stage data or results are inconsistent (missing stage-1 row, unknown stage-2 token)."""
