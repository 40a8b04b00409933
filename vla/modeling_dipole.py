"""`DipoleVLA`: VLM backbone -> context tokens; DiT eps-denoiser with LoRA branches `positive`/`negative`.

Training: :meth:`DipoleVLA.loss_il` (behaviour cloning of the base head) and :meth:`DipoleVLA.loss_dipole`
(sigmoid(beta G)-weighted loss on `positive`, (1 - sigmoid(beta G))-weighted loss on `negative`, on the
same noised samples; specs/dipole.md §3). Inference: :meth:`DipoleVLA.sample` with the guided combination
eps = (1 + omega) eps+ - omega eps- (specs/dipole.md §4), both branches in one batched forward per step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import transformers
from packaging.version import Version
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, PreTrainedModel

from vla.backbones import Context, build_backbone
from vla.backbones.base import PRETRAINED_FIELD
from vla.bev_decoder import BevDecoder, BevGrid, PoseGridReader
from vla.configuration_dipole import ACTION_DIM, ADAPTER_NAMES, NUM_TRAJECTORY_POSES, DipoleVLAConfig
from vla.diffusion import VPLinearSchedule, run_sampler, sample_train_times
from vla.dit import ContextKV, DiTDenoiser
from vla.errors import CheckpointError, ModelConfigError, NormalizationError, VLAError, VLAInputError
from vla.guidance import (
    NEGATIVE,
    POSITIVE,
    as_omega_list,
    branches_for_omega,
    dipole_branch_losses,
    ewr_weights,
    guided_combination,
    weighted_mean,
)
from vla.hub import resolve_pretrained
from vla.lora import (
    BACKBONE_ADAPTER,
    add_backbone_adapter,
    add_dipole_adapters,
    branch_rows,
    effective_weight,
    frozen_adapter_cache,
    is_lora_parameter,
    uniform_rows,
)
from vla.processing_dipole import (
    TOKENIZER_FILE,
    DipoleProcessor,
    NormalizationStats,
    features_to_poses,
    poses_to_features,
)
from vla.scene_plan import ScenePlanProbe, kinematic_baseline_poses, scene_plan_loss

TRAINABLE_SCOPES = ("base", "adapters", "positive", "none")
"""What :meth:`DipoleVLA.set_trainable` can train: the base model, the two head adapters, or nothing."""
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")
SAMPLING_MODES = ("guided", "base")
"""``sample(mode=...)``: the guided two-branch combination, or the base head with the adapters off."""
CHECKPOINT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Parameter dtypes a checkpoint may be stored in or loaded as (docs/model.md, "Dtype policy")."""
DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
"""transformers renamed from_pretrained's ``torch_dtype`` to ``dtype`` in 4.56."""
TARGET_KEY = "target_poses"
"""The one batch key of the training target: raw poses (B, 8, 3) or (B, K, 8, 3) in the rear-axle frame."""
BEV_TARGET_KEY = "bev_target"
"""Batch key of the auxiliary BEV decoder's 0/1 target (B, channels, cells, cells) (vla.training.bev_targets)."""


@dataclass
class DipoleLossOutput:
    """Scalar `loss` to backpropagate and its parts (detached) for logging."""

    loss: torch.Tensor
    loss_positive: torch.Tensor
    loss_negative: torch.Tensor
    loss_bc: torch.Tensor
    weight_positive_mean: torch.Tensor

    def parts(self) -> dict[str, torch.Tensor]:
        """The detached parts by the names a trainer logs them under (one source for those names)."""
        return {"loss_positive": self.loss_positive, "loss_negative": self.loss_negative, "loss_bc": self.loss_bc,
                "weight_positive_mean": self.weight_positive_mean}


MODEL_CARD_FILE = "README.md"
HUB_KWARGS = ("repo_id", "token", "private", "commit_message", "revision", "create_pr")


def upload_checkpoint(directory, repo_id: Optional[str] = None, token=None, private: Optional[bool] = None,
                      commit_message: str = "Upload DipoleVLA checkpoint", revision: Optional[str] = None,
                      create_pr: bool = False):
    """Upload a complete checkpoint directory (weights, config, tokenizer) to the Hugging Face Hub."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = repo_id or Path(directory).name
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(directory), commit_message=commit_message,
                             revision=revision, create_pr=create_pr)


def resolve_dtype(value, field: str = "dtype") -> Optional[torch.dtype]:
    """None / "auto" -> None (the stored dtype); a name of :data:`CHECKPOINT_DTYPES` or a torch dtype -> it."""
    if value is None or value == "auto":
        return None
    if isinstance(value, str):
        value = CHECKPOINT_DTYPES.get(value.removeprefix("torch."), value)
    if value not in CHECKPOINT_DTYPES.values():
        raise ModelConfigError(field, f"unsupported dtype {value!r}; expected auto or one of {list(CHECKPOINT_DTYPES)}")
    return value


def initial_noise(shape: tuple[int, int], generator, device) -> torch.Tensor:
    """N(0, I) starting points (B * S, 8, 4) for B scenes x S samples, from one generator or one per scene."""
    b, s = shape
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn((b * s, NUM_TRAJECTORY_POSES, ACTION_DIM), generator=generator, device=device)
    generators = list(generator)
    if len(generators) != b:
        raise VLAInputError("generator", f"{len(generators)} generators for {b} scenes")
    return torch.cat([torch.randn((s, NUM_TRAJECTORY_POSES, ACTION_DIM), generator=g, device=device)
                      for g in generators])


class DipoleVLA(PreTrainedModel):
    """DIPOLE VLA model. See the module docstring and docs/model.md."""

    config_class = DipoleVLAConfig
    base_model_prefix = "dipole"
    main_input_name = "pixel_values"

    def __init__(self, config: DipoleVLAConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_settings, config.processor_settings)
        self._configure_backbone()
        bev = config.bev_settings
        reader = PoseGridReader(bev, config.head_settings.hidden_size) if bev.head_lookup else None
        self.head = DiTDenoiser(config.head_settings, self.backbone.hidden_size, config.proprio_dim,
                                NUM_TRAJECTORY_POSES, ACTION_DIM, grid_reader=reader)
        if self.has_branches:
            add_dipole_adapters(self.head, config.lora_settings)
        self.bev_decoder = BevDecoder(bev, self.backbone.hidden_size) if bev.enabled else None
        plan = config.scene_plan_settings
        self.scene_plan_probe = ScenePlanProbe(plan, self.backbone.hidden_size) if plan.enabled else None
        diffusion = config.diffusion_settings
        self.schedule = VPLinearSchedule(diffusion.beta_min, diffusion.beta_max)
        self._processor: Optional[DipoleProcessor] = None
        self._trainable_scope: Optional[str] = None
        self._adapter_modules: Optional[tuple[str, ...]] = None
        self.post_init()
        self.set_trainable("base")

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Every submodule initialises itself (DiT zero-inits, LoRA B = 0, HF backbones their own)."""

    def _configure_backbone(self) -> None:
        settings = self.config.backbone_settings
        if settings.lora_rank > 0:
            add_backbone_adapter(self.backbone, settings.lora_rank, settings.lora_alpha, settings.lora_target_modules)
        if settings.gradient_checkpointing:
            self.backbone.enable_gradient_checkpointing()

    @property
    def has_branches(self) -> bool:
        """False for a single-branch model (``lora.rank = 0``, e.g. :meth:`export_merged`): no adapters."""
        return self.config.lora_settings.rank > 0

    def _require_branches(self, what: str) -> None:
        if not self.has_branches:
            raise ModelConfigError("lora.rank", f"{what} needs the two head adapters; this is a single-branch "
                                                "model (lora.rank = 0, a merged export)")

    # Construction helpers ------------------------------------------------------------------------------
    @classmethod
    def from_backbone_pretrained(cls, config: DipoleVLAConfig) -> "DipoleVLA":
        """New model whose backbone loads pretrained weights from ``backbone.pretrained`` (hub id or local path).

        The resolved backbone config is written into ``config.backbone.model_config`` so that the saved
        checkpoint rebuilds without downloads.
        """
        settings = config.backbone_settings
        if settings.model_config is None:
            if not settings.pretrained:
                raise ModelConfigError("backbone.pretrained", "needed when backbone.model_config is not given")
            config.backbone["model_config"] = AutoConfig.from_pretrained(
                resolve_pretrained(settings.pretrained, PRETRAINED_FIELD)).to_dict()
        model = cls(config)
        backbone = build_backbone(config.backbone_settings, config.processor_settings, load_pretrained=True)
        if backbone.hidden_size != model.backbone.hidden_size:
            raise ModelConfigError("backbone.model_config", "pretrained backbone width differs from model_config")
        model.backbone = backbone
        model._configure_backbone()
        config.backbone["model_config"] = backbone.resolved_model_config()
        model.set_trainable(model._trainable_scope or "base", force=True, adapter_modules=model._adapter_modules)
        return model

    @property
    def processor(self) -> DipoleProcessor:
        """The processor bound to this model's config (built on first use, restored by from_pretrained)."""
        if self._processor is None:
            self._processor = DipoleProcessor.from_config(self.config)
        return self._processor

    @processor.setter
    def processor(self, value: DipoleProcessor) -> None:
        value.config = self.config
        self._processor = value

    # Normalisation -----------------------------------------------------------------------------------------
    def set_normalization_stats(self, stats: Union[NormalizationStats, dict]) -> None:
        """Store trajectory (and proprio) statistics in the config; they travel with save_pretrained."""
        values = stats.to_dict() if isinstance(stats, NormalizationStats) else dict(stats)
        parsed = NormalizationStats.from_dict(values)
        if parsed.action_mean.shape != (NUM_TRAJECTORY_POSES, ACTION_DIM):
            raise NormalizationError(f"action stats must be ({NUM_TRAJECTORY_POSES}, {ACTION_DIM}), "
                                     f"got {parsed.action_mean.shape}")
        if parsed.proprio_mean is not None and parsed.proprio_mean.shape != (self.config.proprio_dim,):
            raise NormalizationError(f"proprio stats must be ({self.config.proprio_dim},), "
                                     f"got {parsed.proprio_mean.shape}")
        self.config.normalization = parsed.to_dict()

    def normalization_stats(self) -> NormalizationStats:
        if self.config.normalization is None:
            raise NormalizationError(
                "no normalisation statistics: call model.set_normalization_stats(compute_normalization_stats(poses))"
            )
        return NormalizationStats.from_dict(self.config.normalization)

    def _action_stats(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.normalization_stats()
        return (torch.as_tensor(stats.action_mean, device=device), torch.as_tensor(stats.action_std, device=device))

    def normalize_poses(self, poses: torch.Tensor) -> torch.Tensor:
        """(..., 8, 3) metres/radians -> normalised (..., 8, 4)."""
        mean, std = self._action_stats(poses.device)
        return (poses_to_features(poses.float()) - mean) / std

    def denormalize_poses(self, features: torch.Tensor) -> torch.Tensor:
        """Normalised (..., 8, 4) -> poses (..., 8, 3) with heading = atan2(sin, cos)."""
        mean, std = self._action_stats(features.device)
        return features_to_poses(features * std + mean)

    def _raw_proprio(self, batch: dict) -> torch.Tensor:
        """batch["proprio"] (B, P) as given (metres, radians, m/s), checked."""
        proprio = self._tensor(batch, "proprio").float()
        if proprio.dim() != 2 or proprio.shape[1] != self.config.proprio_dim:
            raise VLAInputError("proprio", f"expected (B, {self.config.proprio_dim}), got {tuple(proprio.shape)}")
        if not torch.isfinite(proprio).all():
            raise VLAInputError("proprio", "contains NaN or inf")
        return proprio

    def _proprio(self, batch: dict) -> torch.Tensor:
        proprio = self._raw_proprio(batch)
        norm = self.config.normalization
        if norm is not None and norm.get("proprio_mean") is not None:
            mean = torch.as_tensor(norm["proprio_mean"], dtype=proprio.dtype, device=proprio.device)
            std = torch.as_tensor(norm["proprio_std"], dtype=proprio.dtype, device=proprio.device)
            proprio = (proprio - mean) / std
        return proprio

    # Batch checks --------------------------------------------------------------------------------------------
    @staticmethod
    def _tensor(batch: dict, key: str) -> torch.Tensor:
        if key not in batch:
            raise VLAInputError(key, "missing from the batch")
        value = batch[key]
        return value if torch.is_tensor(value) else torch.as_tensor(value)

    def _check_visual_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        proc = self.config.processor_settings
        pixels = self._tensor(batch, "pixel_values")
        if pixels.dim() != 5 or pixels.shape[2] != 3:
            raise VLAInputError("pixel_values", f"expected (B, n_cams, 3, H, W), got {tuple(pixels.shape)}")
        if pixels.shape[1] != len(proc.cameras):
            raise VLAInputError("pixel_values", f"expected {len(proc.cameras)} cameras {proc.cameras}, "
                                                f"got {pixels.shape[1]}")
        if list(pixels.shape[3:]) != list(proc.image_size):
            raise VLAInputError("pixel_values", f"expected images of size {tuple(proc.image_size)}, "
                                                f"got {tuple(pixels.shape[3:])}")
        input_ids = self._tensor(batch, "input_ids").long()
        attention_mask = self._tensor(batch, "attention_mask").long()
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape or input_ids.shape[0] != pixels.shape[0]:
            raise VLAInputError("input_ids", f"expected (B, L) ids and mask for B = {pixels.shape[0]}, got "
                                             f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
        if int(input_ids.max()) >= self.backbone.vocab_size or int(input_ids.min()) < 0:
            raise VLAInputError("input_ids", f"token id outside the backbone vocabulary ({self.backbone.vocab_size})")
        dtype = next((p.dtype for p in self.backbone.parameters() if p.is_floating_point()), torch.float32)
        return pixels.to(dtype), input_ids, attention_mask

    def _normalized_target(self, poses, name: str) -> torch.Tensor:
        """Raw poses (B, 8, 3) | (B, K, 8, 3) named ``name`` -> normalised features (B, K, 8, 4)."""
        poses = torch.as_tensor(poses).float()
        if poses.dim() not in (3, 4) or poses.shape[-2:] != (NUM_TRAJECTORY_POSES, 3):
            raise VLAInputError(name, f"expected raw poses (B, {NUM_TRAJECTORY_POSES}, 3) or "
                                      f"(B, K, {NUM_TRAJECTORY_POSES}, 3), got {tuple(poses.shape)}")
        if not torch.isfinite(poses).all():
            raise VLAInputError(name, "contains NaN or inf")
        features = self.normalize_poses(poses)
        return features[:, None] if features.dim() == 3 else features

    def _target(self, batch: dict) -> torch.Tensor:
        """Normalised training target (B, K, 8, 4) from ``batch["target_poses"]``."""
        return self._normalized_target(self._tensor(batch, TARGET_KEY), TARGET_KEY)

    @staticmethod
    def _per_candidate(value: Optional[torch.Tensor], b: int, k: int, name: str, device) -> Optional[torch.Tensor]:
        if value is None:
            return None
        value = torch.as_tensor(value, device=device)
        if value.dim() == 1 and k == 1:
            value = value[:, None]
        if tuple(value.shape) != (b, k):
            raise VLAInputError(name, f"expected shape ({b}, {k}) (or ({b},) for K = 1), got {tuple(value.shape)}")
        return value.reshape(b * k)

    # Trainability ------------------------------------------------------------------------------------------
    def set_trainable(self, scope: str, force: bool = False, adapter_modules: Optional[Sequence[str]] = None) -> None:
        """Which parameters require grad; the only place that changes it (losses never do).

        "base": the base head (+ the backbone unless ``backbone.freeze``; only its LoRA when
        ``backbone.lora_rank``), i.e. imitation learning; "adapters": only the `positive`/`negative` LoRA
        weights of the head (DIPOLE); "positive": only the `positive` adapter (the EWR baseline); "none": nothing.
        ``adapter_modules`` (with "adapters" / "positive"): only the adapters of these ``lora.target_modules``
        train; the others keep their initial zero update.
        """
        if scope not in TRAINABLE_SCOPES:
            raise ModelConfigError("trainable scope", f"unknown scope {scope!r}; expected one of {TRAINABLE_SCOPES}")
        if scope in ("adapters", "positive"):
            self._require_branches("training the adapters")
        modules = None if adapter_modules is None else tuple(adapter_modules)
        if modules is not None:
            unknown = sorted(set(modules) - set(self.config.lora_settings.target_modules))
            if unknown:
                raise ModelConfigError("adapter_modules", f"{unknown} are not among lora.target_modules "
                                                          f"{list(self.config.lora_settings.target_modules)}")
        if (scope, modules) == (self._trainable_scope, self._adapter_modules) and not force:
            return

        def adapter_trains(name: str) -> bool:
            return is_lora_parameter(name) and (modules is None or any(f".{m}.lora_" in name for m in modules))

        settings = self.config.backbone_settings
        for name, param in self.head.named_parameters():
            if scope == "base":
                param.requires_grad_(not is_lora_parameter(name))
            elif scope == "adapters":
                param.requires_grad_(adapter_trains(name))
            elif scope == "positive":
                param.requires_grad_(adapter_trains(name) and f".{POSITIVE}." in name + ".")
            else:
                param.requires_grad_(False)
        if self.bev_decoder is not None:
            self.bev_decoder.requires_grad_(scope == "base")
        if self.scene_plan_probe is not None:
            self.scene_plan_probe.requires_grad_(scope == "base")
        for name, param in self.backbone.named_parameters():
            if scope != "base" or settings.freeze:
                param.requires_grad_(False)
            elif settings.lora_rank > 0:
                param.requires_grad_(is_lora_parameter(name) and BACKBONE_ADAPTER in name)
            else:
                param.requires_grad_(True)
        self._trainable_scope, self._adapter_modules = scope, modules

    @property
    def trainable_scope(self) -> Optional[str]:
        return self._trainable_scope

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def adapter_parameters(self, adapter: str) -> dict[str, torch.nn.Parameter]:
        """LoRA weights of one head adapter (`positive` or `negative`), by name."""
        if adapter not in ADAPTER_NAMES:
            raise VLAInputError("adapter", f"unknown adapter {adapter!r}; expected one of {ADAPTER_NAMES}")
        return {n: p for n, p in self.head.named_parameters() if is_lora_parameter(n) and f".{adapter}." in n + "."}

    def export_adapter(self, adapter: str, directory: Union[str, Path]) -> Path:
        """One head adapter in peft's own format (``adapter_config.json`` + ``adapter_model.safetensors``),
        loadable with ``PeftModel.from_pretrained(head, directory)`` on a head built without adapters."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        if adapter not in ADAPTER_NAMES:
            raise VLAInputError("adapter", f"unknown adapter {adapter!r}; expected one of {ADAPTER_NAMES}")
        self._require_branches("exporting an adapter")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.head.peft_config[adapter]
        config.save_pretrained(str(directory))
        state = get_peft_model_state_dict(self.head, adapter_name=adapter)
        save_file({f"base_model.model.{k}": v.detach().contiguous().cpu() for k, v in state.items()},
                  str(directory / "adapter_model.safetensors"))
        return directory

    def merged_single_branch(self, omega: float = 0.0) -> "DipoleVLA":
        """The guided policy at ``omega`` as a plain single-branch model: the `positive` adapter merged into
        the head (W + scaling B A per adapted layer), no adapters (``lora.rank = 0``).

        Exact only at omega = 0, where the guided policy is pi+ = base head + `positive`; any other omega
        combines both branches at every step, which no single set of weights reproduces, and is refused.
        """
        if float(omega) != 0.0:
            raise VLAInputError("omega", f"a merged single-branch export is exact only at omega = 0 (pi+); "
                                         f"omega = {omega} combines both branches (1 + omega) eps+ - omega eps- at "
                                         "every step: keep the two-branch checkpoint for guidance")
        self._require_branches("a merged export")
        config = DipoleVLAConfig.from_dict(self.config.to_dict())
        config.lora = {**config.lora, "rank": 0}
        state = {}
        with torch.no_grad():
            for name, value in self.state_dict().items():
                if not name.startswith("head."):  # the backbone (with its own LoRA, if any) as it is
                    state[name] = value
                elif not is_lora_parameter(name):
                    state[name.replace(".base_layer.", ".")] = value
            for name, module in self.head.named_modules():
                if isinstance(module, LoraLayer):
                    state[f"head.{name}.weight"] = effective_weight(module, POSITIVE).detach()
        merged = DipoleVLA(config)
        merged.apply_dtype(self.dtype)
        merged.load_state_dict(state, strict=True)
        merged.to(self.device)
        merged.processor = DipoleProcessor(merged.config, self.processor.tokenizer)
        merged.train(self.training)
        return merged

    def export_merged(self, directory: Union[str, Path], omega: float = 0.0, **save_kwargs) -> Path:
        """Write :meth:`merged_single_branch` as a checkpoint (``save_pretrained``; loads with
        ``DipoleVLA.from_pretrained`` and plans at omega = 0 or ``mode="base"``)."""
        directory = Path(directory)
        self.merged_single_branch(omega).save_pretrained(directory, **save_kwargs)
        return directory

    # Forward pieces --------------------------------------------------------------------------------------------
    def encode(self, batch: dict) -> Context:
        """Context of each scene (B, T, D) + mask: the backbone's tokens, then the BEV cells' with ``bev.feed_head``,
        and the decoded probabilities with ``bev.head_lookup``; compute once and pass as ``context=``."""
        return self._with_bev(self._backbone_context(batch))

    def _backbone_context(self, batch: dict) -> Context:
        pixels, input_ids, attention_mask = self._check_visual_inputs(batch)
        return self.backbone(pixels, input_ids, attention_mask)

    def _with_bev(self, context: Context) -> Context:
        bev = self.config.bev_settings
        if self.bev_decoder is None:
            return context
        if bev.feed_head:
            context = self.bev_decoder.extend_context(context)
        if bev.head_lookup:
            if context.bev_features is None:  # carried, so that the BEV loss reuses them instead of decoding again
                context = replace(context, bev_features=self.bev_decoder.cell_features(context.tokens, context.mask))
            # the head reads the decoder's output; only the BEV loss trains the decoder
            probabilities = torch.sigmoid(self.bev_decoder.predict(context).float()).detach()
            context = replace(context, bev_probabilities=probabilities)
        return context

    def _head_grid(self, context: Context) -> Optional[BevGrid]:
        """The BEV grid of the head's pose tokens (``bev.head_lookup``), None for a head without the lookup."""
        if not self.config.bev_settings.head_lookup:
            return None
        if context.bev_probabilities is None:
            raise VLAInputError("context", "bev.head_lookup: the context must come from encode() (it carries the "
                                           "BEV decoder's probabilities)")
        mean, std = self._action_stats(context.bev_probabilities.device)
        return BevGrid(context.bev_probabilities, mean, std)

    def _head_kv(self, context: Context, adapters: Optional[Sequence[str]] = None) -> ContextKV:
        """The head's cross-attention keys/values (and BEV grid) of a context: the base head's, or with ``adapters``
        one set per adapter, adapter-major (:meth:`vla.dit.DiTDenoiser.context_kv_branches`)."""
        grid = self._head_grid(context)
        if adapters is None:
            return self.head.context_kv(context.tokens, context.mask, None, grid)
        return self.head.context_kv_branches(context.tokens, context.mask, adapters, grid)

    def _context(self, batch: dict, context: Optional[Context], grad: bool) -> Context:
        """The context, with gradients into the backbone only when ``grad``; the BEV cells of ``bev.feed_head``
        follow their decoder's requires_grad (a frozen backbone still trains the decoder during imitation)."""
        if context is not None:
            return context if grad else context.detach()
        if grad:
            return self.encode(batch)
        with torch.no_grad():
            backbone = self._backbone_context(batch).detach()
        return self._with_bev(backbone)

    def _noised(self, actions: torch.Tensor, generator: Optional[torch.Generator]):
        n = actions.shape[0]
        t = sample_train_times(n, self.config.diffusion_settings.t_min, device=actions.device, generator=generator)
        eps = torch.randn(actions.shape, device=actions.device, generator=generator, dtype=actions.dtype)
        return self.schedule.add_noise(actions, eps, t), eps, t

    def loss_il(self, batch: dict, *, context: Optional[Context] = None, sample_weights=None, sample_mask=None,
                bev_weight: float = 0.0, scene_plan_weight: float = 0.0, proprio_dropout: float = 0.0,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Behaviour-cloning eps-MSE of the base head (adapters off).

        batch["target_poses"] raw (B, 8, 3) | (B, K, 8, 3), normalised here with the config's statistics.
        sample_weights (B,)|(B, K) multiply the per-sample loss (e.g. exp-weighted regression baselines);
        sample_mask (B,)|(B, K) bool drops samples. Plain mean over the kept samples. ``bev_weight`` > 0 adds
        that multiple of the BEV decoder's loss on batch["bev_target"] (B, channels, cells, cells), computed
        on the same context; ``scene_plan_weight`` > 0 that multiple of :meth:`loss_scene_plan`.
        ``proprio_dropout`` is the probability that a scene's normalised ego motion (history poses, velocity,
        acceleration) is replaced by zeros (the training mean), so the head has to plan from the cameras and the
        prompt alone; a driving command in the proprio vector stays (it is the route, which the cameras cannot show).
        Gradients reach what :meth:`set_trainable` enabled (``"base"`` for imitation).
        """
        if not 0.0 <= proprio_dropout <= 1.0:
            raise ValueError(f"proprio_dropout must be in [0, 1], got {proprio_dropout}")
        actions = self._target(batch)
        b, k = actions.shape[:2]
        ctx = self._context(batch, context, grad=not self.config.backbone_settings.freeze)
        weights = self._per_candidate(sample_weights, b, k, "sample_weights", actions.device)
        mask = self._per_candidate(sample_mask, b, k, "sample_mask", actions.device)
        if weights is not None:
            weights = weights.detach().float()
        flat = actions.reshape(b * k, NUM_TRAJECTORY_POSES, ACTION_DIM)
        a_t, eps, t = self._noised(flat, generator)
        kv = self._head_kv(ctx)
        proprio = self._proprio(batch)
        if proprio_dropout > 0:
            hidden = torch.rand(b, device=proprio.device, generator=generator) < proprio_dropout
            motion = torch.ones(proprio.shape[1], dtype=torch.bool, device=proprio.device)
            motion[list(self.config.processor_settings.one_hot_proprio_columns)] = False
            proprio = proprio.masked_fill(hidden[:, None] & motion[None, :], 0.0)
        eps_hat = self.head(a_t, t, proprio.repeat_interleave(k, dim=0), kv, None)
        per_sample = ((eps_hat - eps) ** 2).mean(dim=(-2, -1))
        loss = weighted_mean(per_sample, weights, mask)
        if bev_weight > 0:
            loss = loss + bev_weight * self.loss_bev(batch, ctx)
        if scene_plan_weight > 0:
            loss = loss + scene_plan_weight * self.loss_scene_plan(batch, ctx)
        return loss

    def loss_scene_plan(self, batch: dict, context: Context) -> torch.Tensor:
        """The scene-plan probe's loss (:mod:`vla.scene_plan`): its prediction from ``context`` against the first
        candidate of batch["target_poses"] minus the ego state's kinematic extrapolation (raw batch["proprio"]),
        both normalised with the trajectory statistics; plain mean over the batch."""
        if self.scene_plan_probe is None:
            raise ModelConfigError("scene_plan.hidden_size", "a scene-plan loss needs the probe (scene_plan.hidden_size "
                                                             "> 0 in the model config)")
        settings = self.config.scene_plan_settings
        target = self._target(batch)[:, 0]
        poses = kinematic_baseline_poses(self._raw_proprio(batch), self.config.processor_settings, settings.baseline)
        baseline = self._normalized_target(poses.to(target.device), settings.baseline)[:, 0]
        predicted = self.scene_plan_probe(context.tokens, context.mask)
        return scene_plan_loss(predicted, target, baseline, settings.features)

    def loss_bev(self, batch: dict, context: Context) -> torch.Tensor:
        """The auxiliary BEV decoder's loss on ``batch["bev_target"]`` (:class:`vla.bev_decoder.BevDecoder`)."""
        if self.bev_decoder is None:
            raise ModelConfigError("bev.cells", "a BEV loss needs the BEV decoder (bev.cells > 0 in the model config)")
        target = self._tensor(batch, BEV_TARGET_KEY).to(context.tokens.device)
        bev = self.config.bev_settings
        expected = (context.tokens.shape[0], len(bev.channels), bev.cells, bev.cells)
        if tuple(target.shape) != expected:
            raise VLAInputError(BEV_TARGET_KEY, f"expected {expected} (batch, channels {bev.channels}, cells, "
                                                f"cells), got {tuple(target.shape)}")
        if bev.feed_head and context.bev_features is None:
            raise VLAInputError("context", "bev.feed_head: the context must come from encode() (it carries the "
                                "decoder's cell features)")
        return self.bev_decoder.loss(context, target)

    def loss_dipole(self, batch: dict, g, beta: float, *, anchor_poses=None, bc_weight: float = 0.0,
                    context: Optional[Context] = None, sample_mask=None, offset: float = 0.0,
                    normalize_weights: bool = False, generator: Optional[torch.Generator] = None) -> DipoleLossOutput:
        """DIPOLE loss (specs/dipole.md §3): both adapters on the same (a, eps, t), one batched forward.

        batch["target_poses"] raw (B, K, 8, 3) | (B, 8, 3) (the candidates); g (B, K) | (B,) (detached).
        Per-sample loss = mean squared eps error over 8 x 4; weights :func:`vla.guidance.dichotomous_weights`
        sigmoid(beta g + offset) for `positive` and 1 - sigmoid(...) for `negative`; plain mean over kept
        samples (or divided by the weight sum with ``normalize_weights``). ``bc_weight`` > 0 adds
        bc_weight * (||eps - eps+||^2 + ||eps - eps-||^2) on ``anchor_poses`` (B, 8, 3) raw, one anchor
        trajectory per scene (e.g. the human one), the same noised sample for both branches: the anchor is
        common to both, so omega does not amplify it. Gradients reach what :meth:`set_trainable` enabled
        (``"adapters"`` for DIPOLE).
        """
        self._require_branches("the DIPOLE loss")
        err, g, mask, loss_bc = self._branch_regression(batch, g, (POSITIVE, NEGATIVE), anchor_poses, bc_weight,
                                                        context, sample_mask, generator)
        loss_pos, loss_neg, w_pos = dipole_branch_losses(err[0], err[1], g, beta, offset, mask, normalize_weights)
        total = loss_pos + loss_neg + bc_weight * loss_bc
        valid = torch.ones_like(w_pos) if mask is None else mask.float()
        return DipoleLossOutput(total, loss_pos.detach(), loss_neg.detach(), loss_bc.detach(),
                                (w_pos * valid).sum().detach() / valid.sum().clamp_min(1.0))

    def loss_ewr(self, batch: dict, g, beta: float, max_weight: float, *, anchor_poses=None, bc_weight: float = 0.0,
                 context: Optional[Context] = None, sample_mask=None,
                 generator: Optional[torch.Generator] = None) -> DipoleLossOutput:
        """Exponentially weighted regression of the `positive` adapter (the EWR baseline, specs/dipole.md §2.1).

        The same inputs, samples and BC anchor as :meth:`loss_dipole`, one branch: per-sample eps error of
        `positive` weighted by min(exp(beta g), max_weight) (:func:`vla.guidance.ewr_weights`), plain mean over kept samples; ``loss_negative`` is 0. Sampling it is ``omega = 0``.
        """
        self._require_branches("the EWR loss")
        err, g, mask, loss_bc = self._branch_regression(batch, g, (POSITIVE,), anchor_poses, bc_weight, context,
                                                        sample_mask, generator)
        weights = ewr_weights(g, beta, max_weight)
        loss_pos = weighted_mean(err[0], weights, mask)
        valid = torch.ones_like(weights) if mask is None else mask.float()
        zero = torch.zeros((), device=loss_pos.device)
        return DipoleLossOutput(loss_pos + bc_weight * loss_bc, loss_pos.detach(), zero, loss_bc.detach(),
                                (weights * valid).sum().detach() / valid.sum().clamp_min(1.0))

    def _branch_regression(self, batch: dict, g, branches: Sequence[str], anchor_poses, bc_weight: float,
                           context: Optional[Context], sample_mask, generator: Optional[torch.Generator]):
        """Per-sample eps errors of each adapter in ``branches`` on the same noised candidates (len(branches), B*K),
        g and mask flattened to (B*K,), and the BC anchor loss summed over the branches (0 without anchor)."""
        if (bc_weight > 0) != (anchor_poses is not None):
            raise VLAInputError("anchor_poses", "pass anchor_poses together with bc_weight > 0 (one without the "
                                                f"other is a mistake; got bc_weight={bc_weight})")
        actions = self._target(batch)
        b, k = actions.shape[:2]
        n, nb = b * k, len(branches)
        device = actions.device
        g = self._per_candidate(torch.as_tensor(g, dtype=torch.float32, device=device), b, k, "g", device)
        mask = self._per_candidate(sample_mask, b, k, "sample_mask", device)
        if mask is not None:  # masked candidates (e.g. failed scores) may carry NaN goodness: ignore it
            mask = mask.bool()
            g = torch.where(mask, g, torch.zeros_like(g))
        if torch.isnan(g).any():
            raise VLAInputError("g", "goodness signal contains NaN for an unmasked candidate")
        ctx = self._context(batch, context, grad=False)
        proprio = self._proprio(batch)

        flat = actions.reshape(n, NUM_TRAJECTORY_POSES, ACTION_DIM)
        a_t, eps, t = self._noised(flat, generator)
        kv = self._head_kv(ctx, list(branches))
        proprio_rows = proprio.repeat_interleave(k, dim=0)
        rows = branch_rows(branches, n)
        eps_hat = self.head(a_t.repeat(nb, 1, 1), t.repeat(nb), proprio_rows.repeat(nb, 1), kv, rows)
        err = ((eps_hat - eps.repeat(nb, 1, 1)) ** 2).mean(dim=(-2, -1)).reshape(nb, n)
        loss_bc = torch.zeros((), device=device)
        if bc_weight > 0:
            bc = self._normalized_target(torch.as_tensor(anchor_poses, device=device), "anchor_poses")
            if bc.shape[:2] != (b, 1):
                raise VLAInputError("anchor_poses", f"expected one anchor trajectory per scene ({b}, 8, 3), "
                                                    f"got {tuple(anchor_poses.shape)}")
            # Every branch regresses the same noised anchor: for DIPOLE the pull is common to eps+ and eps-, so
            # the guided combination (1 + omega) eps+ - omega eps- passes it with weight 1 and never amplifies it.
            bc_t, bc_eps, bc_time = self._noised(bc[:, 0], generator)
            bc_rows = branch_rows(branches, b)
            bc_hat = self.head(bc_t.repeat(nb, 1, 1), bc_time.repeat(nb), proprio.repeat(nb, 1), kv, bc_rows)
            loss_bc = ((bc_hat - bc_eps.repeat(nb, 1, 1)) ** 2).mean(dim=(-2, -1)).reshape(nb, b).mean(1).sum()
        return err, g, mask, loss_bc

    # Sampling --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, batch: dict, omega: Union[float, Sequence[float]] = 0.0, num_steps: Optional[int] = None,
               num_samples: int = 1, context: Optional[Context] = None,
               generator: Union[None, torch.Generator, Sequence[torch.Generator]] = None,
               mode: str = "guided", sampler: Optional[str] = None,
               init_noise_scale: Optional[float] = None) -> torch.Tensor:
        """Trajectories (B, S, 8, 3); with a list of omegas (B, W, S, 8, 3), all from the same initial noise.

        mode="guided": eps = (1 + omega) eps+ - omega eps- (omega = 0: pi+ only; omega = -1: pi- only);
        mode="base": the IL head with adapters off (omega ignored). The context is computed once (or passed)
        and reused by every step, branch, sample and omega. ``generator`` may be one generator per scene, which
        makes each scene's samples independent of how scenes are batched.
        """
        if mode not in SAMPLING_MODES:
            raise VLAInputError("mode", f"unknown sampling mode {mode!r}; expected one of {SAMPLING_MODES}")
        if num_samples < 1:
            raise VLAInputError("num_samples", "must be >= 1")
        diffusion = self.config.diffusion_settings
        num_steps = diffusion.num_steps if num_steps is None else int(num_steps)
        sampler = diffusion.sampler if sampler is None else sampler
        scale = diffusion.init_noise_scale if init_noise_scale is None else float(init_noise_scale)
        omegas, sweep = as_omega_list(omega)
        if mode == "guided" and not self.has_branches and any(w != 0.0 for w in omegas):
            raise VLAInputError("omega", f"a single-branch model (merged at omega = 0) plans at omega = 0 only; got "
                                         f"{omegas}: guidance needs the two-branch checkpoint")
        was_training = self.training
        # switching modes walks every module: skipped when the whole model is already in eval mode
        switch_mode = was_training or any(module.training for module in self.modules())
        if switch_mode:
            self.eval()
        try:
            with frozen_adapter_cache():  # adapters are fixed while sampling: effective weights once
                ctx = context if context is not None else self.encode(batch)
                b, s = ctx.batch_size, num_samples
                n = b * s
                proprio = self._proprio(batch).repeat_interleave(s, dim=0)
                if proprio.shape[0] != n:
                    raise VLAInputError("proprio", f"batch has {proprio.shape[0] // s} scenes, context has {b}")
                device = ctx.tokens.device
                x_init = initial_noise((b, s), generator, device) * scale

                if mode == "base" or not self.has_branches:  # single-branch: its head is pi+ itself
                    kv_base = self._head_kv(ctx)
                    plans = [self._integrate(lambda x, t: self.head(x, t.expand(n), proprio, kv_base, None),
                                             x_init, sampler, num_steps)]
                    plans = plans * (len(omegas) if mode == "guided" else 1)
                else:
                    needed = sorted({br for w in omegas for br in branches_for_omega(w)}, key=ADAPTER_NAMES.index)
                    kv_all = self._head_kv(ctx, needed)
                    kv_of = {name: kv_all.select(i * b, (i + 1) * b) for i, name in enumerate(needed)}
                    plans = [self._integrate(self._guided_eps_fn(w, proprio, kv_all, kv_of, n), x_init, sampler,
                                             num_steps)
                             for w in omegas]
                poses = torch.stack([self.denormalize_poses(x).reshape(b, s, NUM_TRAJECTORY_POSES, 3)
                                     for x in plans], 1)
        finally:
            if switch_mode:
                self.train(was_training)
        return poses if sweep else poses[:, 0]

    def _guided_eps_fn(self, omega: float, proprio: torch.Tensor, kv_all: ContextKV, kv_of: dict, n: int):
        """eps(x, t) of one omega; kv_all holds the context cache of every needed branch, kv_of each alone."""
        branches = branches_for_omega(omega)
        if len(branches) == 1:
            name = branches[0]
            rows = uniform_rows(name, n)
            return lambda x, t: self.head(x, t.expand(n), proprio, kv_of[name], rows)
        # both branches: rows [positive x n, negative x n] against the two-branch cache [positive, negative]
        rows = branch_rows((POSITIVE, NEGATIVE), n)
        proprio2 = torch.cat([proprio, proprio])

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps = self.head(torch.cat([x, x]), t.expand(2 * n), proprio2, kv_all, rows)
            return guided_combination(eps[:n], eps[n:], omega)

        return eps_fn

    def _integrate(self, eps_fn, x_init: torch.Tensor, sampler: str, num_steps: int) -> torch.Tensor:
        diffusion = self.config.diffusion_settings
        return run_sampler(sampler, eps_fn, x_init, self.schedule, num_steps, diffusion.t_min,
                           diffusion.time_spacing, diffusion.denoise_to_zero)

    def model_card(self, training_recipe: Optional[str] = None, results: Optional[str] = None,
                   evaluate_command: Optional[str] = None) -> str:
        """README.md of a checkpoint: config summary, training recipe, results table, the evaluate command."""
        cfg = self.config
        bb, head, lora, diff = (cfg.backbone_settings, cfg.head_settings, cfg.lora_settings,
                                cfg.diffusion_settings)
        params = sum(p.numel() for p in self.parameters())
        command = evaluate_command or ("python launch/evaluate.py checkpoint=<this folder or repo id> "
                                       "data_root=<OpenScene root> split=navtest omegas=0,0.5,1,2 seeds=0,1,2")
        lines = [
            "---", "library_name: transformers", "tags: [driving, diffusion-policy, dipole, navsim]", "---", "",
            f"# DipoleVLA ({cfg.preset or 'custom preset'})", "",
            "A vision-language backbone with a DiT diffusion head and two LoRA adapters (`positive`, `negative`) "
            "trained by DIPOLE; sampling combines them as eps = (1 + omega) eps+ - omega eps-.", "",
            "## Configuration", "",
            f"- backbone: `{bb.type}` `{bb.pretrained or bb.timm_model or 'from model_config'}`",
            f"- head: DiT hidden {head.hidden_size}, depth {head.depth}, {head.num_heads} heads",
            (f"- adapters: LoRA rank {lora.rank}, alpha {lora.alpha}" if self.has_branches else
             "- adapters: none (single-branch: `positive` merged into the head, plans at omega = 0)"),
            f"- sampler: {diff.sampler}, {diff.num_steps} steps; parameters: {params / 1e6:.1f} M; dtype: {self.dtype}",
            f"- cameras: {', '.join(cfg.processor_settings.cameras)}; normalisation stats stored: "
            f"{cfg.normalization is not None}", "",
            "## Training recipe", "", training_recipe or "Not recorded.", "",
            "## Results", "", results or "Not recorded.", "",
            "## Evaluate", "", f"    {command}", "",
            "Load with `DipoleVLA.from_pretrained(...)` and `AutoProcessor.from_pretrained(...)` (import `vla`).",
        ]
        return "\n".join(lines) + "\n"

    # Dtype -------------------------------------------------------------------------------------------------
    def apply_dtype(self, dtype: Union[str, torch.dtype]) -> "DipoleVLA":
        """The dtype policy: every floating parameter and stored (persistent) buffer in ``dtype``; buffers that
        are never stored (rotary frequency tables) stay float32. Sampling noise, the sampler state, the
        normalisation and the returned poses are float32 whatever the weights."""
        target = resolve_dtype(dtype)
        if target is None:
            raise ModelConfigError("dtype", "apply_dtype needs a concrete dtype")
        for module in self.modules():
            for name, param in module.named_parameters(recurse=False):
                if param.is_floating_point() and param.dtype != target:
                    param.data = param.data.to(target)
            for name, buffer in module.named_buffers(recurse=False):
                if buffer is not None and buffer.is_floating_point():
                    wanted = torch.float32 if name in module._non_persistent_buffers_set else target
                    if buffer.dtype != wanted:
                        module._buffers[name] = buffer.to(wanted)
        self.config.dtype = target
        return self

    # Persistence -------------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        """config.json + model.safetensors (backbone, head, both LoRA adapters) + tokenizer files, one directory.

        ``model_card`` (a dict of :meth:`model_card` arguments) fills README.md's training recipe and results.
        ``push_to_hub=True`` uploads the directory once it is complete (``repo_id``, default the directory
        name; ``token``, ``private``, ``commit_message``, ``revision``, ``create_pr`` as in transformers).
        """
        hub = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
        card = kwargs.pop("model_card", None)
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self.processor.save_pretrained(save_directory, save_config=False)
            (Path(save_directory) / MODEL_CARD_FILE).write_text(self.model_card(**(card or {})))
            if push_to_hub:
                upload_checkpoint(save_directory, **hub)
        return result

    @classmethod
    def _check_weights_against_config(cls, path: Path) -> None:
        """Compare the stored tensor names/shapes with a model built (on the meta device) from config.json."""
        try:
            config = DipoleVLAConfig.from_pretrained(path)
        except ModelConfigError as err:
            raise CheckpointError(path, f"config.json: {err}") from err
        with torch.device("meta"):
            reference = cls(config)
        expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        stored = {}
        index = path / WEIGHTS_FILES[1]
        files = [WEIGHTS_FILES[0]]
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        for name in files:
            if not (path / name).is_file():
                raise CheckpointError(path, f"missing weights file {name}")
            with safe_open(str(path / name), framework="pt") as f:
                stored.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
        # Missing / unexpected keys are judged after loading (transformers renames some backbone keys on load).
        mismatched = [f"{k}: stored {stored[k]} vs config {expected[k]}" for k in sorted(expected)
                      if k in stored and stored[k] != expected[k]]
        missing = sorted(k for k in expected if k.startswith("head.") and k not in stored)
        unexpected = sorted(k for k in stored if k.startswith("head.") and k not in expected)
        problems = []
        for label, values in (("mismatched shapes", mismatched), ("missing keys", missing),
                              ("unexpected keys", unexpected)):
            if values:
                problems.append(f"{label} {values[:3]}{' ...' if len(values) > 3 else ''} ({len(values)} in all)")
        if problems:
            raise CheckpointError(path, f"{WEIGHTS_FILES[0]} does not match config.json (check the head, lora and "
                                        "backbone.model_config fields): " + "; ".join(problems))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load a directory written by :meth:`save_pretrained`; strict: any missing, unexpected or mismatched
        weight raises :class:`CheckpointError` naming it. A path-like argument that does not exist is a local
        "not found" error (:func:`vla.hub.resolve_pretrained`), not a hub download.

        ``dtype`` (alias ``torch_dtype``): None / "auto" loads the stored dtype (``config.json``'s), a name of
        :data:`CHECKPOINT_DTYPES` or a torch dtype casts to it; either way :meth:`apply_dtype` leaves one
        parameter dtype.
        """
        pretrained_model_name_or_path = resolve_pretrained(pretrained_model_name_or_path)
        path = Path(str(pretrained_model_name_or_path))
        want_info = kwargs.pop("output_loading_info", False)
        try:
            requested = [resolve_dtype(kwargs.pop(key, None), key) for key in ("dtype", "torch_dtype")]
        except ModelConfigError as err:
            raise CheckpointError(path, str(err)) from err
        if None not in requested and requested[0] != requested[1]:
            raise CheckpointError(path, f"dtype {requested[0]} and torch_dtype {requested[1]} disagree")
        dtype = requested[0] or requested[1]
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise CheckpointError(path, "missing file config.json")
            if not any((path / name).is_file() for name in WEIGHTS_FILES):
                raise CheckpointError(path, f"missing weights file {WEIGHTS_FILES[0]}")
            if not (path / TOKENIZER_FILE).is_file():
                raise CheckpointError(path, f"missing tokenizer file {TOKENIZER_FILE}")
        if path.is_dir():
            cls._check_weights_against_config(path)
        if dtype is None:
            try:
                stored = DipoleVLAConfig.from_pretrained(pretrained_model_name_or_path)
            except ModelConfigError as err:
                raise CheckpointError(path, f"config.json: {err}") from err
            stored = getattr(stored, "dtype", None) or getattr(stored, "torch_dtype", None)
            try:
                dtype = resolve_dtype(stored, "config.json dtype") or torch.float32
            except ModelConfigError as err:
                raise CheckpointError(path, str(err)) from err
        kwargs[DTYPE_KWARG] = dtype
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                                  **kwargs)
        except ModelConfigError as err:
            raise CheckpointError(path, f"config.json: {err}") from err
        except (RuntimeError, ValueError) as err:
            if isinstance(err, VLAError):
                raise
            raise CheckpointError(path, f"weights do not match config.json: {err}") from err
        problems = []
        for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            values = sorted(str(v) for v in info.get(key, ()))
            if values:
                problems.append(f"{key.replace('_', ' ')} {values[:5]}{' ...' if len(values) > 5 else ''}")
        if problems:
            raise CheckpointError(path, "model.safetensors does not match config.json (check the head, lora and "
                                        "backbone.model_config fields): " + "; ".join(problems))
        if path.is_dir():
            model._processor = DipoleProcessor.from_pretrained(path, config=model.config)
        model.apply_dtype(dtype)
        model.set_trainable("base", force=True)
        return (model, info) if want_info else model


AutoConfig.register(DipoleVLAConfig.model_type, DipoleVLAConfig, exist_ok=True)
AutoModel.register(DipoleVLAConfig, DipoleVLA, exist_ok=True)

__all__ = ["DipoleVLA", "DipoleLossOutput", "Context"]
