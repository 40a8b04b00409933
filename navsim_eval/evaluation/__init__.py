"""Evaluation harness: planners on a split, native PDM scoring, omega sweep, two-stage aggregation, reports."""

from navsim_eval.evaluation.distributed import Distributed, from_accelerate
from navsim_eval.evaluation.errors import EvaluationError, PlannerError, ResultsFileError, TwoStageError
from navsim_eval.evaluation.pipeline import EvaluationConfig, EvaluationOutputs, build_sources, run_pipeline
from navsim_eval.evaluation.planners import (
    ConstantTurnRatePlanner, ConstantVelocityPlanner, HumanPlanner, ModelPlanner, PlanningBatch, StandingStillPlanner,
)
from navsim_eval.evaluation.results import Variant, read_rows, write_rows
from navsim_eval.evaluation.runner import RunSettings, run_evaluation
from navsim_eval.evaluation.scorers import NativeScorer
from navsim_eval.evaluation.summary import markdown_table, summarize
from navsim_eval.evaluation.two_stage import TwoStageGroup, aggregate_two_stage, pseudo_closed_loop_weights

__all__ = [
    "ConstantTurnRatePlanner", "ConstantVelocityPlanner", "Distributed", "EvaluationConfig", "EvaluationError",
    "EvaluationOutputs", "HumanPlanner", "ModelPlanner", "NativeScorer", "PlannerError", "PlanningBatch",
    "ResultsFileError", "RunSettings", "StandingStillPlanner", "TwoStageError", "TwoStageGroup", "Variant",
    "aggregate_two_stage", "build_sources", "from_accelerate", "markdown_table", "pseudo_closed_loop_weights",
    "read_rows", "run_evaluation", "run_pipeline", "summarize", "write_rows",
]
