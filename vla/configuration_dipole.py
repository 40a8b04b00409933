"""`DipoleVLAConfig`: the transformers config of the DIPOLE VLA model, built from typed sections.

Each section is a dataclass (backbone, head, lora, diffusion, processor). In `config.json` they are stored
as plain dicts; the typed views are the properties ``config.backbone_settings`` etc. Unknown keys raise
:class:`~vla.errors.ModelConfigError` naming the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from transformers import PretrainedConfig

from data_pipelines.types import DRIVING_COMMANDS
from vla.errors import ModelConfigError

# DP-VLA constants (specs/dipole.md §7, [hdp]).
DPVLA_CAMERAS = ("CAM_L0", "CAM_F0", "CAM_R0")
DPVLA_IMAGE_SIZE = (384, 384)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision / timm ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PROMPT_TOKENS = 64
"""Prompt budget of the real presets. DP-VLA allows 40 tokens (specs/dipole.md §7), but this template's
longest prompts (negative steering, two-digit speeds, "straight") come to about 48 tokens with Florence-2's
GPT-2-style BPE (an estimate: the tokenizer cannot be downloaded here); 64 leaves a margin, and a longer
prompt is an error in ``DipoleProcessor.tokenize``."""
NUM_HISTORY_FRAMES = 4  # NAVSIM agent input: 4 frames, oldest first (specs/navsim_data.md §5)
HISTORY_INTERVAL_S = 0.5  # NAVSIM frames are 2 Hz (specs/navsim_data.md §5)
# nuPlan ego vehicle (Chrysler Pacifica) wheelbase [m], nuPlan `get_pacifica_parameters`.
PACIFICA_WHEELBASE_M = 3.089
MIN_SPEED_FOR_STEERING = 0.2  # below this speed the prompt's steering is 0 (specs/dipole.md §7)
NUM_TRAJECTORY_POSES = 8  # 4 s at 0.5 s (specs/navsim_data.md §5)
ACTION_DIM = 4  # (x, y, cos h, sin h)

DEFAULT_PROMPT_TEMPLATE = (
    "steering: {steering:.2f} rad\n"
    "speed: {speed:.2f} m/s\n"
    "acceleration: {acceleration:.2f} m/s2\n"
    "navigation: {command}\n"
    "what is the trajectory for the next 4 seconds?"
)
"""DP-VLA-style prompt (specs/dipole.md §7): steering, speed, acceleration, navigation, then the question.
The steering value is in radians and labelled as such."""

DIT_LORA_TARGETS = (
    "attn.qkv",
    "attn.proj",
    "mlp.fc1",
    "mlp.fc2",
    "cross_attn.q",
    "cross_attn.k",
    "cross_attn.v",
    "cross_attn.proj",
    "cross_mlp.fc1",
    "cross_mlp.fc2",
)
"""Per-block DiT projections that carry the `positive`/`negative` adapters (specs/dipole.md §7)."""

ADAPTER_NAMES = ("positive", "negative")


@dataclass
class BackboneSettings:
    """Which vision-language backbone produces the context tokens, and how it is trained."""

    type: str = "florence2"  # "florence2" | "hf_vlm" | "timm_lm"
    pretrained: Optional[str] = None  # hub id or local path of the backbone (florence2, hf_vlm) or the LM (timm_lm)
    model_config: Optional[dict] = None  # full HF config dict of the backbone (florence2, hf_vlm) or its LM (timm_lm)
    tokenizer: Optional[str] = None  # hub id / path of the tokenizer; None: a small local word-level tokenizer
    timm_model: Optional[str] = None  # timm_lm: timm model name of the vision encoder
    timm_kwargs: dict = field(default_factory=dict)  # timm_lm: overrides for timm.create_model (tiny sizes)
    timm_pretrained: bool = False  # timm_lm: load timm's pretrained vision weights in from_backbone_pretrained
    projector_hidden: int = 0  # timm_lm: hidden width of the 2-layer MLP projector (0: LM hidden size)
    context_layers: int = 1  # hf_vlm / timm_lm: average the last N hidden-state layers as context
    freeze: bool = False
    lora_rank: int = 0  # > 0: a LoRA adapter named "backbone" on `lora_target_modules`
    lora_alpha: int = 16
    lora_target_modules: list = field(default_factory=lambda: ["q_proj", "v_proj"])
    gradient_checkpointing: bool = False


@dataclass
class HeadSettings:
    """DiT denoiser size (paper: hidden 1024, depth 12, 16 heads, MLP ratio 4; specs/dipole.md §7)."""

    hidden_size: int = 1024
    depth: int = 12
    num_heads: int = 16
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    action_embed_hidden: int = 512  # action tokens: MLP(4 -> 512 -> hidden) (specs/dipole.md §7)
    frequency_embedding_size: int = 256  # sinusoidal timestep features (DiT)
    gradient_checkpointing: bool = False


@dataclass
class LoraSettings:
    """The two DIPOLE adapters (paper defaults r 64, alpha 16, dropout 0; specs/dipole.md §6)."""

    rank: int = 64  # 0: a single-branch model without adapters (what ``DipoleVLA.export_merged`` writes)
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list = field(default_factory=lambda: list(DIT_LORA_TARGETS))


@dataclass
class DiffusionSettings:
    """VP-SDE with a linear beta schedule, eps-prediction (specs/dipole.md §7)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3  # training t ~ U(t_min, 1); also the sampler's end time
    sampler: str = "dpm_solver_pp"  # "dpm_solver_pp" (2nd-order multistep) | "ddim"
    num_steps: int = 10
    time_spacing: str = "logsnr"  # "logsnr" | "uniform"
    init_noise_scale: float = 0.5  # DP-VLA starts from N(0, I) * 0.5
    denoise_to_zero: bool = True  # one extra x0-prediction at the end time


@dataclass
class ProcessorSettings:
    """How an AgentInput becomes a batch: cameras, image size and normalisation, prompt, proprioception."""

    cameras: list = field(default_factory=lambda: list(DPVLA_CAMERAS))
    image_size: list = field(default_factory=lambda: list(DPVLA_IMAGE_SIZE))  # (H, W)
    image_mean: list = field(default_factory=lambda: list(IMAGENET_MEAN))
    image_std: list = field(default_factory=lambda: list(IMAGENET_STD))
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    max_prompt_tokens: int = MAX_PROMPT_TOKENS
    num_history_frames: int = NUM_HISTORY_FRAMES
    history_interval_s: float = HISTORY_INTERVAL_S
    wheelbase_m: float = PACIFICA_WHEELBASE_M
    min_speed_for_steering: float = MIN_SPEED_FOR_STEERING
    # also give the head the one-hot driving command in the proprio vector (NAVSIM's TransFuser puts it in its
    # ego status); the prompt carries it either way
    command_in_proprio: bool = False

    @property
    def proprio_dim(self) -> int:
        """History poses (x, y, heading) + current velocity (2) + acceleration (2) [+ driving command one-hot]."""
        return self._ego_motion_dim + len(self.one_hot_proprio_columns)

    @property
    def one_hot_proprio_columns(self) -> tuple:
        """Proprio columns that hold a one-hot code (the driving command): normalisation leaves them as 0 / 1."""
        if not self.command_in_proprio:
            return ()
        return tuple(range(self._ego_motion_dim, self._ego_motion_dim + len(DRIVING_COMMANDS)))

    @property
    def history_heading_columns(self) -> tuple:
        """Proprio columns of the history headings, oldest first (the last one is the current frame's)."""
        return tuple(3 * frame + 2 for frame in range(self.num_history_frames))

    @property
    def velocity_columns(self) -> slice:
        """Proprio columns of the current velocity (x, y) in the current frame."""
        return slice(3 * self.num_history_frames, 3 * self.num_history_frames + 2)

    @property
    def _ego_motion_dim(self) -> int:
        """The proprio columns before the command: history poses (x, y, heading), velocity (2), acceleration (2)."""
        return self.num_history_frames * 3 + 4


BEV_CHANNELS = ("drivable_area", "objects")  # what vla.training.bev_targets can rasterise


@dataclass
class BevSettings:
    """Auxiliary bird's-eye-view decoder (TransFuser-style semantic BEV target, trained beside imitation).

    A square grid of ``cells`` x ``cells`` in the current rear-axle frame (x forward, y left), starting
    ``behind_m`` behind the axle; each cell is predicted per channel (a logit). 0 cells: no decoder.
    """

    cells: int = 0  # cells per side; 0: no BEV decoder
    cell_size_m: float = 3.0  # side of a cell [m]
    behind_m: float = 8.0  # the grid's first row starts this far behind the rear axle [m]
    channels: list = field(default_factory=lambda: list(BEV_CHANNELS))  # a subset of BEV_CHANNELS, in order
    hidden_size: int = 64  # width of the decoder's cell queries
    feed_head: bool = False  # the trajectory head also attends to the decoder's cell features (one token per cell)
    head_lookup: bool = False  # each pose token of the head reads the decoded probabilities at and beside its position

    @property
    def enabled(self) -> bool:
        return self.cells > 0

    def cell_centers(self) -> "np.ndarray":
        """(cells * cells, 2) x, y of the cell centres in the rear-axle frame, row-major (x rows, y columns)."""
        import numpy as np

        along = -self.behind_m + (np.arange(self.cells) + 0.5) * self.cell_size_m
        across = (np.arange(self.cells) - (self.cells - 1) / 2.0) * self.cell_size_m
        x, y = np.meshgrid(along, across, indexing="ij")
        return np.stack([x.ravel(), y.ravel()], axis=1)


SCENE_PLAN_BASELINES = ("constant_velocity", "constant_turn_rate")  # kinematic extrapolations of the ego state
SCENE_PLAN_FEATURES = ("all", "lateral")  # all: x, y, cos h, sin h; lateral: y, cos h, sin h (the speed left out)


@dataclass
class ScenePlanSettings:
    """Auxiliary scene-plan probe (vla.scene_plan): a learned query reads the backbone context, without the ego
    state, and predicts how the logged plan departs from a kinematic extrapolation of the ego state (normalised
    features). Trained beside imitation (``il.scene_plan_loss_weight``), it asks the context tokens the head reads
    to carry what only the scene explains. 0 hidden size: no probe."""

    hidden_size: int = 0  # width of the probe's query; 0: no probe
    num_heads: int = 4  # heads of its cross-attention over the context
    baseline: str = "constant_velocity"  # one of SCENE_PLAN_BASELINES: what the target is measured from
    features: str = "all"  # one of SCENE_PLAN_FEATURES: which normalised features the loss covers

    @property
    def enabled(self) -> bool:
        return self.hidden_size > 0


_SECTIONS = {
    "backbone": BackboneSettings,
    "head": HeadSettings,
    "lora": LoraSettings,
    "diffusion": DiffusionSettings,
    "processor": ProcessorSettings,
    "bev": BevSettings,
    "scene_plan": ScenePlanSettings,
}


def _section(name: str, cls: type, value: Any) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ModelConfigError(name, f"expected a mapping, got {type(value).__name__}")
    known = {f.name for f in fields(cls)}
    for key in value:
        if key not in known:
            raise ModelConfigError(f"{name}.{key}", f"unknown key; expected one of {sorted(known)}")
    return cls(**value)


class DipoleVLAConfig(PretrainedConfig):
    """Config of :class:`~vla.modeling_dipole.DipoleVLA` (model_type ``dipole_vla``).

    Args:
        backbone, head, lora, diffusion, processor, bev, scene_plan: dicts (or the dataclasses above) for each
            section.
        normalization: trajectory/proprio statistics (see :func:`vla.processing_dipole.compute_normalization_stats`);
            None until computed from training data.
        preset: the preset name this config came from (informational).
    """

    model_type = "dipole_vla"

    def __init__(
        self,
        backbone: Optional[dict] = None,
        head: Optional[dict] = None,
        lora: Optional[dict] = None,
        diffusion: Optional[dict] = None,
        processor: Optional[dict] = None,
        bev: Optional[dict] = None,
        scene_plan: Optional[dict] = None,
        normalization: Optional[dict] = None,
        preset: Optional[str] = None,
        **kwargs: Any,
    ):
        sections = {"backbone": backbone, "head": head, "lora": lora, "diffusion": diffusion, "processor": processor,
                    "bev": bev, "scene_plan": scene_plan}
        for name, value in sections.items():
            setattr(self, name, asdict(_section(name, _SECTIONS[name], value)))
        self.normalization = normalization
        self.preset = preset
        super().__init__(**kwargs)
        self.validate_settings()

    # Typed views -------------------------------------------------------------------------------------
    @property
    def backbone_settings(self) -> BackboneSettings:
        return _section("backbone", BackboneSettings, self.backbone)

    @property
    def head_settings(self) -> HeadSettings:
        return _section("head", HeadSettings, self.head)

    @property
    def lora_settings(self) -> LoraSettings:
        return _section("lora", LoraSettings, self.lora)

    @property
    def diffusion_settings(self) -> DiffusionSettings:
        return _section("diffusion", DiffusionSettings, self.diffusion)

    @property
    def processor_settings(self) -> ProcessorSettings:
        return _section("processor", ProcessorSettings, self.processor)

    @property
    def bev_settings(self) -> BevSettings:
        return _section("bev", BevSettings, self.bev)

    @property
    def scene_plan_settings(self) -> ScenePlanSettings:
        return _section("scene_plan", ScenePlanSettings, self.scene_plan)

    def validate_settings(self) -> None:
        """Raise :class:`ModelConfigError` naming the first inconsistent field."""
        bb, head, lora = self.backbone_settings, self.head_settings, self.lora_settings
        diff, proc = self.diffusion_settings, self.processor_settings
        if bb.type not in ("florence2", "hf_vlm", "timm_lm"):
            raise ModelConfigError("backbone.type", f"unknown backbone {bb.type!r}")
        if bb.model_config is None and bb.pretrained is None:
            raise ModelConfigError("backbone.model_config", "need model_config (or pretrained to resolve it)")
        if bb.type == "timm_lm" and not bb.timm_model:
            raise ModelConfigError("backbone.timm_model", "timm_lm backbone needs a timm model name")
        if head.hidden_size % head.num_heads:
            raise ModelConfigError("head.num_heads", f"{head.num_heads} does not divide hidden_size {head.hidden_size}")
        if lora.rank < 0:
            raise ModelConfigError("lora.rank", "must be positive (or 0: a single-branch model without adapters)")
        if diff.sampler not in ("dpm_solver_pp", "ddim"):
            raise ModelConfigError("diffusion.sampler", f"unknown sampler {diff.sampler!r}")
        if diff.time_spacing not in ("logsnr", "uniform"):
            raise ModelConfigError("diffusion.time_spacing", f"unknown spacing {diff.time_spacing!r}")
        if not 0.0 < diff.t_min < 1.0:
            raise ModelConfigError("diffusion.t_min", "must lie in (0, 1)")
        if len(proc.cameras) == 0:
            raise ModelConfigError("processor.cameras", "at least one camera")
        if len(proc.image_size) != 2:
            raise ModelConfigError("processor.image_size", "expected (height, width)")
        if len(proc.image_mean) != 3 or len(proc.image_std) != 3:
            raise ModelConfigError("processor.image_mean", "image_mean and image_std need 3 values")
        bev = self.bev_settings
        if bev.cells < 0 or (bev.enabled and (bev.cell_size_m <= 0 or bev.hidden_size <= 0)):
            raise ModelConfigError("bev.cells", "cells >= 0; with cells > 0, cell_size_m and hidden_size > 0")
        unknown = [c for c in bev.channels if c not in BEV_CHANNELS]
        if unknown or (bev.enabled and not bev.channels) or len(set(bev.channels)) != len(bev.channels):
            raise ModelConfigError("bev.channels", f"distinct names out of {list(BEV_CHANNELS)}, got {bev.channels}")
        if bev.head_lookup and not bev.enabled:
            raise ModelConfigError("bev.head_lookup", "reads the BEV decoder's grid: set bev.cells > 0")
        plan = self.scene_plan_settings
        if plan.hidden_size < 0 or (plan.enabled and plan.hidden_size % max(plan.num_heads, 1)) or plan.num_heads < 1:
            raise ModelConfigError("scene_plan.num_heads", f"hidden_size >= 0 and num_heads >= 1 dividing it, got "
                                                           f"{plan.hidden_size} and {plan.num_heads}")
        if plan.baseline not in SCENE_PLAN_BASELINES:
            raise ModelConfigError("scene_plan.baseline", f"one of {list(SCENE_PLAN_BASELINES)}, got {plan.baseline!r}")
        if plan.baseline == "constant_turn_rate" and proc.num_history_frames < 2:
            raise ModelConfigError("scene_plan.baseline", "constant_turn_rate needs processor.num_history_frames >= 2")
        if plan.features not in SCENE_PLAN_FEATURES:
            raise ModelConfigError("scene_plan.features", f"one of {list(SCENE_PLAN_FEATURES)}, got {plan.features!r}")
        if self.normalization is not None:
            for key in ("action_mean", "action_std", "proprio_mean", "proprio_std"):
                if key not in self.normalization:
                    raise ModelConfigError(f"normalization.{key}", "missing")

    @property
    def proprio_dim(self) -> int:
        return self.processor_settings.proprio_dim
