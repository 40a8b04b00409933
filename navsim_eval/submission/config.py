"""Typed configs of the submission commands (``launch/make_submission.py write|merge|validate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from data_pipelines.configuration import REQUIRED, FiniteFloat, NonNegativeInt, PositiveInt


@dataclass(frozen=True)
class SplitConfig:
    """Which scenes a submission covers."""

    split: str = "synthetic_test"  # split name under <data_root>/splits, or a split YAML path (e.g. navtest)
    data_root: Optional[str] = None  # dataset root; None: $OPENSCENE_DATA_ROOT
    maps_root: Optional[str] = None  # map root; None: $NUPLAN_MAPS_ROOT, else <data_root>/maps
    format: Optional[Literal["v1", "v2"]] = None  # v1: navtest board; v2: two-stage boards; None: v1 (validate: the file's)
    two_stage_root: Optional[str] = None  # two-stage data; None: <data_root>/<split>_two_stage


@dataclass(frozen=True)
class WriteConfig(SplitConfig):
    """Run a planner on the split (or read an evaluation's results.csv) and write submission.pkl."""

    planner: Literal["dipole", "standing_still", "constant_velocity", "constant_turn_rate", "human"] = "dipole"
    """what predicts the trajectories: the model, or a baseline that needs none (MODEL_FREE_PLANNERS)"""
    checkpoint: Optional[str] = None  # DipoleVLA.from_pretrained folder or hub id (planner dipole)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # model weights; auto: as stored
    omega: FiniteFloat = 1.0  # guidance strength of the dipole planner
    num_steps: Optional[PositiveInt] = None  # denoising steps; None: the checkpoint's sampler default
    seeds: tuple[NonNegativeInt, ...] = (0,)  # one prediction set per seed (v1)
    batch_size: PositiveInt = 4  # scenes per model forward
    from_results: Optional[str] = None  # take the trajectories from this evaluation results.csv
    method: Annotated[str, REQUIRED] = ""  # method name (team_name = <a href=REPO>METHOD</a>)
    repo_url: Annotated[str, REQUIRED] = ""  # public code link (v1 board rule)
    authors: Annotated[str, REQUIRED] = ""  # author list
    email: Annotated[str, REQUIRED] = ""  # contact e-mail
    institution: Annotated[str, REQUIRED] = ""  # institution
    country: Annotated[str, REQUIRED] = ""  # country / region
    out: Annotated[str, REQUIRED] = ""  # output folder or .pkl path


@dataclass(frozen=True)
class MergeConfig:
    """Merge v1 submissions of several seeds into one."""

    files: Annotated[tuple[str, ...], REQUIRED] = ()  # submission.pkl files (bare arguments)
    out: Annotated[str, REQUIRED] = ""  # output folder or .pkl path


@dataclass(frozen=True)
class ValidateConfig(SplitConfig):
    """Check a submission against a split; exits 1 on any error."""

    file: Annotated[str, REQUIRED] = ""  # the submission.pkl to check (bare argument)
