"""PDM-Closed reference planner (spec pdm_score.md §3.8)."""

from navsim_eval.pdm.planner.config import IDMConfig, PDMClosedConfig
from navsim_eval.pdm.planner.forecast import ForecastObservation, build_forecast_observation
from navsim_eval.pdm.objects import SceneObjects, frame_objects
from navsim_eval.pdm.planner.pdm_closed import PlannerResult, plan_pdm_closed

__all__ = [
    "ForecastObservation", "IDMConfig", "PDMClosedConfig", "PlannerResult", "SceneObjects",
    "build_forecast_observation", "frame_objects", "plan_pdm_closed",
]
