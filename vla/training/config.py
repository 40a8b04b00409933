"""Typed configuration of a fine-tuning run (imitation warm start, DIPOLE rounds, EWR baseline, evaluation).

Presets live in ``configs/train/*.yaml`` and are loaded with :func:`data_pipelines.configuration.load_config`
plus ``key=value`` overrides. Every default below is the embedded CPU demo (``configs/train/demo.yaml`` is
its twin), so ``accelerate launch launch/finetune.py`` with no argument runs it.

Values marked "project choice" are not given by the DIPOLE paper (specs/dipole.md §6, §10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

EVAL_OMEGAS = (0.0, 0.5, 1.0, 2.0, 4.0)  # specs/dipole.md §6 step 6


@dataclass(frozen=True)
class ModelSection:
    """Which model to build (a ``vla.presets`` name) or which checkpoint to start from."""

    preset: str = "tiny-florence2"
    init_checkpoint: Optional[Path] = None  # start from this from_pretrained dir instead of a fresh model
    load_backbone_weights: bool = False  # real presets: backbone weights by hub id / local path
    overrides: dict[str, Any] = field(default_factory=dict)  # forwarded to vla.presets.build_config
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class DataSection:
    """Where the scenes come from. ``data_root`` None: $OPENSCENE_DATA_ROOT (real NAVSIM)."""

    data_root: Optional[Path] = Path("data/synthetic")
    maps_root: Optional[Path] = None  # None: $NUPLAN_MAPS_ROOT, else <data_root>/maps
    generate_synthetic: bool = True  # create a synthetic world at data_root when it is missing
    synthetic_preset: str = "default"
    synthetic_overrides: list[str] = field(default_factory=list)
    splits_dir: Optional[Path] = None  # None: <data_root>/splits
    train_split: str = "synthetic_train"  # a split YAML name in splits_dir, or a path
    eval_split: str = "synthetic_test"
    max_train_scenes: Optional[int] = None
    max_eval_scenes: Optional[int] = None
    metric_cache_dir: Optional[Path] = None  # None: <output_dir>/metric_cache
    cache_agent_inputs: bool = True  # keep decoded camera images in memory (small datasets only)


@dataclass(frozen=True)
class OptimSection:
    """AdamW with linear warmup then cosine decay (project choice)."""

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 10
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class ILSection:
    """Imitation warm start: denoising regression on the logged (human) trajectories (reference policy mu_0)."""

    steps: int = 300
    batch_size: int = 32  # per process, per micro-step
    optim: OptimSection = OptimSection(lr=1e-3, warmup_steps=20)


@dataclass(frozen=True)
class RolloutSection:
    """How candidates are drawn from the current guided policy (specs/dipole.md §6 step 2)."""

    num_candidates: int = 8  # K per scene; K >= 8 keeps the group std meaningful (§5.2)
    omega: float = 0.0  # omega_roll; project default 0 = pi+ (§6)
    num_steps: int = 10  # rollout denoising steps; = eval steps so mu is the evaluated sampler (HDP-RL uses 5)
    init_noise_scale: Optional[float] = None  # T_roll; None: the model's sampler default
    scenes_per_round: Optional[int] = None  # per round over all processes; None: the whole train split
    batch_size: int = 32  # scenes per rollout forward
    score_human: bool = False  # also score the logged trajectory (needed by G4 and the human-anchor option)


@dataclass(frozen=True)
class DipoleSection:
    """DIPOLE rounds (specs/dipole.md §3, §5.2, §6) and the EWR baseline that shares the rollout machinery."""

    rounds: int = 3
    steps_per_round: int = 40
    batch_size: int = 16  # scenes per process per micro-step (each with K candidates)
    advantage: str = "group_normalized"  # a vla.training.advantages registry name (or alias G1..G4, §5.2)
    beta: float = 2.0  # project choice ([rl-code] uses 1.0; the NAVSIM value is unknown, §6)
    weight_offset: float = 0.0  # k in sigmoid(beta G + k); paper formula has none (§3.7)
    normalize_weights: bool = False  # divide by the weight sum instead of the plain mean (§3.2)
    bc_weight: float = 0.5  # BC anchor lambda on human trajectories for pi+ (§8 option (b)); project choice
    human_anchor: bool = True  # add the logged trajectory as candidate K+1 with its own score and G (§8 (a))
    optim: OptimSection = OptimSection(lr=1e-4, warmup_steps=5)
    rollout: RolloutSection = RolloutSection()
    ewr_max_weight: float = 20.0  # EWR baseline: exp(beta G) clipped here (the instability §2.1 describes)
    eval_every_round: bool = False  # evaluate on the eval split after each round, every eval omega (§6 step 6)
    reuse_context: bool = True  # DIPOLE: keep the rollout's backbone context (frozen backbone) for the update
    context_cache_max_mb: float = 4096.0  # per process, on CPU; a larger round re-encodes each micro-batch


@dataclass(frozen=True)
class EvalSection:
    """Evaluation on the eval split through the evaluation harness (navsim_eval.evaluation, wired in by the
    launch script): per scene and omega ``num_samples`` trajectories, each scene's noise seeded by (seed, token)."""

    enabled: bool = True
    omegas: tuple[float, ...] = EVAL_OMEGAS
    num_steps: int = 10  # DP-VLA sampler steps (§7)
    num_samples: int = 1
    batch_size: int = 32
    seed: int = 1234  # fixed initial noise so IL and DIPOLE are compared on the same draws


@dataclass(frozen=True)
class RewardSection:
    """PDM scoring of rollouts and evaluations (the scorer is wired in by the launch script)."""

    version: Literal["v1", "v2"] = "v1"  # train and report with one version (§5.2, §8)
    num_workers: int = 2  # parallel scoring workers per process


@dataclass(frozen=True)
class TrainConfig:
    """A whole run: which stages, the model, the data and where outputs go."""

    name: str = "finetune-demo"
    output_dir: Path = Path("outputs/finetune-demo")
    seed: int = 0
    stages: tuple[str, ...] = ("il", "dipole")
    gradient_accumulation_steps: int = 1
    log_every: int = 10
    checkpoint_every: int = 100  # optimizer steps between checkpoints (also at every stage/round end)
    keep_checkpoints: int = 2
    tensorboard: bool = True
    progress_bars: bool = True
    stop_after_steps: Optional[int] = None  # checkpoint and stop at this global optimizer step (preemption drills)
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    il: ILSection = ILSection()
    dipole: DipoleSection = DipoleSection()
    ewr: DipoleSection = DipoleSection(bc_weight=0.0)  # EWR trains the base head; no anchor term
    eval: EvalSection = EvalSection()
    reward: RewardSection = RewardSection()

    def __post_init__(self) -> None:
        from data_pipelines.configuration import ConfigError

        from vla.training.advantages import advantage_names
        from vla.training.stages import stage_names

        unknown = [s for s in self.stages if s not in stage_names()]
        if unknown:
            raise ConfigError(f"stages: unknown stage(s) {unknown}; valid stages: {stage_names()}")
        if not self.stages:
            raise ConfigError("stages: at least one stage is needed")
        if self.gradient_accumulation_steps < 1:
            raise ConfigError("gradient_accumulation_steps must be >= 1")
        for section_name in ("dipole", "ewr"):
            section: DipoleSection = getattr(self, section_name)
            if section.rollout.num_candidates < 2:
                raise ConfigError(f"{section_name}.rollout.num_candidates must be >= 2 (a group needs 2 samples)")
            if section.beta <= 0:
                raise ConfigError(f"{section_name}.beta must be > 0")
            if section.advantage not in advantage_names():
                raise ConfigError(f"{section_name}.advantage: unknown {section.advantage!r}; valid: "
                                  f"{advantage_names()}")
        if "ewr" in self.stages and "dipole" in self.stages:
            raise ConfigError("stages: run 'dipole' and 'ewr' in separate runs (both start from the IL policy)")
