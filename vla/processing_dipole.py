"""From NAVSIM `AgentInput`s to model batches, and trajectories <-> normalised (x, y, cos h, sin h).

* images: the configured cameras of the current frame, resized (bicubic) and mean/std-normalised;
* prompt: DP-VLA's steering / speed / acceleration / navigation lines (specs/dipole.md §7), tokenised to a
  fixed length;
* proprio: the history poses (x, y, heading) in the current frame + current velocity and acceleration (raw);
* target_poses: the target trajectory (8, 3) in the rear-axle frame (raw).

The processor never normalises: the model does, with the statistics stored in its config
(:func:`compute_normalization_stats`, ``DipoleVLA.set_normalization_stats``), so they travel in the checkpoint.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoProcessor, AutoTokenizer, PreTrainedTokenizerFast

from data_pipelines.geometry import history_yaw_rate
from data_pipelines.types import DRIVING_COMMANDS, AgentInput
from vla.configuration_dipole import NUM_TRAJECTORY_POSES, DipoleVLAConfig, ProcessorSettings
from vla.errors import CheckpointError, NormalizationError, VLAInputError

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

PROMPT_COMMAND_WORDS = {"left": "left", "forward": "straight", "right": "right", "unknown": "unknown"}
"""DP-VLA names the driving commands left / straight / right / unknown (specs/dipole.md §7)."""

MIN_STD = 1e-3  # floor for normalisation standard deviations (guards constant dimensions)
SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "bos_token": "[BOS]", "eos_token": "[EOS]"}
TOKENIZER_FILE = "tokenizer.json"


# Trajectory representation --------------------------------------------------------------------------
def poses_to_features(poses: torch.Tensor) -> torch.Tensor:
    """(..., 3) (x, y, heading) -> (..., 4) (x, y, cos h, sin h)."""
    return torch.stack([poses[..., 0], poses[..., 1], torch.cos(poses[..., 2]), torch.sin(poses[..., 2])], dim=-1)


def features_to_poses(features: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (..., 3) with heading = atan2(sin, cos)."""
    return torch.stack([features[..., 0], features[..., 1], torch.atan2(features[..., 3], features[..., 2])], dim=-1)


@dataclass
class NormalizationStats:
    """Action stats (num_poses, 4) and optional proprio stats (P,), stored in ``config.normalization``."""

    action_mean: np.ndarray
    action_std: np.ndarray
    proprio_mean: Optional[np.ndarray] = None
    proprio_std: Optional[np.ndarray] = None

    def to_dict(self) -> dict:
        def as_list(a):
            return None if a is None else np.asarray(a, dtype=np.float32).tolist()

        return {"action_mean": as_list(self.action_mean), "action_std": as_list(self.action_std),
                "proprio_mean": as_list(self.proprio_mean), "proprio_std": as_list(self.proprio_std)}

    @classmethod
    def from_dict(cls, values: dict) -> "NormalizationStats":
        def as_array(key):
            v = values.get(key)
            return None if v is None else np.asarray(v, dtype=np.float32)

        stats = cls(as_array("action_mean"), as_array("action_std"), as_array("proprio_mean"), as_array("proprio_std"))
        if stats.action_mean is None or stats.action_std is None:
            raise NormalizationError("normalization.action_mean / action_std missing")
        if np.any(stats.action_std <= 0) or (stats.proprio_std is not None and np.any(stats.proprio_std <= 0)):
            raise NormalizationError("normalization standard deviations must be positive")
        return stats


def compute_normalization_stats(target_poses: ArrayLike, proprio: Optional[ArrayLike] = None,
                                per_timestep: bool = False, min_std: float = MIN_STD,
                                one_hot_proprio_columns: Sequence[int] = ()) -> NormalizationStats:
    """Mean/std of (x, y, cos h, sin h) over the training targets (N, num_poses, 3), and of proprio (N, P).

    per_timestep=False pools all poses per dimension (robust for small data); True keeps one value per pose.
    Standard deviations are floored at `min_std`. Proprio columns in `one_hot_proprio_columns` get mean 0 and
    std 1 (a code that is rare or absent in training, like "unknown", must not be scaled by its tiny std).
    """
    poses = torch.as_tensor(np.asarray(target_poses), dtype=torch.float64)
    if poses.dim() != 3 or poses.shape[-1] != 3:
        raise VLAInputError("target_poses", f"expected (N, num_poses, 3), got {tuple(poses.shape)}")
    if not torch.isfinite(poses).all():
        raise VLAInputError("target_poses", "contains NaN or inf")
    feats = poses_to_features(poses)
    if per_timestep:
        mean, std = feats.mean(0), feats.std(0, unbiased=False)
    else:
        flat = feats.reshape(-1, 4)
        mean = flat.mean(0).expand(poses.shape[1], 4)
        std = flat.std(0, unbiased=False).expand(poses.shape[1], 4)
    std = std.clamp_min(min_std)
    p_mean = p_std = None
    if proprio is not None:
        p = torch.as_tensor(np.asarray(proprio), dtype=torch.float64)
        if not torch.isfinite(p).all():
            raise VLAInputError("proprio", "contains NaN or inf")
        p_mean, p_std = p.mean(0).numpy(), p.std(0, unbiased=False).clamp_min(min_std).numpy()
        columns = list(one_hot_proprio_columns)
        p_mean[columns], p_std[columns] = 0.0, 1.0
    return NormalizationStats(mean.numpy().astype(np.float32), std.numpy().astype(np.float32),
                              None if p_mean is None else p_mean.astype(np.float32),
                              None if p_std is None else p_std.astype(np.float32))


# Tokenizer for tiny presets ---------------------------------------------------------------------------
def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=True)]
    )


def build_word_tokenizer(prompt_template: str) -> PreTrainedTokenizerFast:
    """A small lower-case word-level tokenizer covering the prompt template, commands, digits and punctuation.

    Built locally with the `tokenizers` library (no download) and saved inside the checkpoint directory.
    """
    pre = _pre_tokenizer()
    literal = " ".join(text for text, _, _, _ in string.Formatter().parse(prompt_template) if text)
    words = [w for w, _ in pre.pre_tokenize_str(literal.lower())]
    words += list(PROMPT_COMMAND_WORDS.values()) + list(string.digits) + list(string.punctuation)
    vocab: dict[str, int] = {}
    for token in list(SPECIAL_TOKENS.values()) + words:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre
    bos, eos = SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="right", **SPECIAL_TOKENS)


# Processor ----------------------------------------------------------------------------------------------
class DipoleProcessor:
    """Turns a list of `AgentInput` (+ optional target poses) into the model batch.

    The processor reads its settings and normalisation statistics from the model config it is bound to,
    so statistics set on the model later are seen here.
    """

    def __init__(self, config: DipoleVLAConfig, tokenizer):
        self.config = config
        self.tokenizer = tokenizer

    # construction / persistence ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: DipoleVLAConfig) -> "DipoleProcessor":
        """Build the tokenizer named by ``backbone.tokenizer`` (or the local word-level one)."""
        name = config.backbone_settings.tokenizer
        if name is None:
            tokenizer = build_word_tokenizer(config.processor_settings.prompt_template)
        else:
            tokenizer = AutoTokenizer.from_pretrained(name)
        return cls(config, tokenizer)

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], config: Optional[DipoleVLAConfig] = None,
                        **tokenizer_kwargs) -> "DipoleProcessor":
        """The processor of a checkpoint directory (also what ``AutoProcessor.from_pretrained`` returns);
        ``tokenizer_kwargs`` go to ``AutoTokenizer.from_pretrained``."""
        directory = Path(directory)
        if config is None:
            if not (directory / "config.json").is_file():
                raise CheckpointError(directory, "missing file config.json")
            config = DipoleVLAConfig.from_pretrained(directory)
        if not (directory / TOKENIZER_FILE).is_file():
            raise CheckpointError(directory, f"missing tokenizer file {TOKENIZER_FILE}")
        return cls(config, AutoTokenizer.from_pretrained(directory, **tokenizer_kwargs))

    def save_pretrained(self, directory: Union[str, Path], save_config: bool = True) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        if save_config:
            self.config.save_pretrained(directory)

    @property
    def settings(self) -> ProcessorSettings:
        return self.config.processor_settings

    # pieces ------------------------------------------------------------------------------------------------
    def images(self, agent_input: AgentInput) -> torch.Tensor:
        """(n_cams, 3, H, W) float32 of the current frame's configured cameras."""
        settings = self.settings
        if not agent_input.cameras:
            raise VLAInputError("cameras", "agent input has no camera frames")
        current = agent_input.cameras[-1]
        mean = torch.tensor(settings.image_mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(settings.image_std, dtype=torch.float32).view(3, 1, 1)
        out = []
        for name in settings.cameras:
            try:
                camera = current.get(name)
            except KeyError as err:
                raise VLAInputError(f"cameras.{name}", str(err)) from None
            image = camera.image
            if image is None:
                raise VLAInputError(f"cameras.{name}", "no image in the current frame (check the sensor config)")
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 2 or image.shape[1] < 2:
                raise VLAInputError(f"cameras.{name}", f"expected an (H, W, 3) RGB image, got shape {image.shape}")
            if image.dtype != np.uint8:
                raise VLAInputError(f"cameras.{name}", f"expected uint8 pixels, got {image.dtype}")
            x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None] / 255.0
            x = F.interpolate(x, size=tuple(settings.image_size), mode="bicubic", align_corners=False, antialias=True)
            out.append(((x[0].clamp(0.0, 1.0)) - mean) / std)
        return torch.stack(out)

    @staticmethod
    def _vector(value, field: str, size: int) -> np.ndarray:
        if value is None:
            raise VLAInputError(field, "missing")
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        if arr.shape != (size,):
            raise VLAInputError(field, f"expected {size} values, got shape {np.shape(value)}")
        if not np.all(np.isfinite(arr)):
            raise VLAInputError(field, "contains NaN or inf")
        return arr

    def prompt_values(self, agent_input: AgentInput) -> dict:
        """steering [rad], speed [m/s], acceleration [m/s^2] and the navigation word of the current frame."""
        settings = self.settings
        if len(agent_input.ego_statuses) < 2:
            raise VLAInputError("ego_statuses", "need at least two frames (steering uses the last heading change)")
        current, previous = agent_input.ego_statuses[-1], agent_input.ego_statuses[-2]
        velocity = self._vector(current.ego_velocity, "ego_statuses[-1].ego_velocity", 2)
        acceleration = self._vector(current.ego_acceleration, "ego_statuses[-1].ego_acceleration", 2)
        command = self._vector(current.driving_command, "ego_statuses[-1].driving_command", len(DRIVING_COMMANDS))
        heading_now = self._vector(current.ego_pose, "ego_statuses[-1].ego_pose", 3)[2]
        heading_before = self._vector(previous.ego_pose, "ego_statuses[-2].ego_pose", 3)[2]
        yaw_rate = float(history_yaw_rate(heading_now, heading_before, settings.history_interval_s))
        vx = float(velocity[0])
        steering = 0.0
        if abs(vx) >= settings.min_speed_for_steering:
            steering = float(np.arctan(yaw_rate * settings.wheelbase_m / vx))
        return {
            "steering": steering,
            "speed": float(np.hypot(*velocity)),
            "acceleration": float(np.hypot(*acceleration)),
            "command": PROMPT_COMMAND_WORDS[DRIVING_COMMANDS[int(np.argmax(command))]],
        }

    def build_prompt(self, agent_input: AgentInput) -> str:
        try:
            return self.settings.prompt_template.format(**self.prompt_values(agent_input))
        except KeyError as err:
            raise VLAInputError("processor.prompt_template", f"unknown field {err}") from None

    def proprio(self, agent_input: AgentInput) -> np.ndarray:
        """(P,) = history poses (x, y, heading), oldest first, + current velocity (2) + acceleration (2)
        [+ the current driving command, one-hot, with ``command_in_proprio``]."""
        settings = self.settings
        statuses = agent_input.ego_statuses
        if len(statuses) < settings.num_history_frames:
            raise VLAInputError("ego_statuses",
                                f"need {settings.num_history_frames} history frames, got {len(statuses)}")
        history = statuses[-settings.num_history_frames:]
        parts = [self._vector(s.ego_pose, f"ego_statuses[{i}].ego_pose", 3) for i, s in enumerate(history)]
        parts.append(self._vector(statuses[-1].ego_velocity, "ego_statuses[-1].ego_velocity", 2))
        parts.append(self._vector(statuses[-1].ego_acceleration, "ego_statuses[-1].ego_acceleration", 2))
        if settings.command_in_proprio:
            parts.append(self._vector(statuses[-1].driving_command, "ego_statuses[-1].driving_command",
                                      len(DRIVING_COMMANDS)))
        return np.concatenate(parts).astype(np.float32)

    def proprio_array(self, agent_inputs: Sequence[AgentInput]) -> np.ndarray:
        """(N, P) proprio of many inputs (for :func:`compute_normalization_stats`)."""
        return np.stack([self.proprio(a) for a in agent_inputs])

    def tokenize(self, prompts: Sequence[str]) -> dict:
        """Ids and mask padded to ``max_prompt_tokens``; a longer prompt is an error (never cut silently)."""
        budget = self.settings.max_prompt_tokens
        lengths = [len(ids) for ids in self.tokenizer(list(prompts))["input_ids"]]
        longest = max(lengths, default=0)
        if longest > budget:
            prompt = list(prompts)[lengths.index(longest)]
            raise VLAInputError("processor.max_prompt_tokens",
                                f"the prompt {prompt!r} has {longest} tokens, the budget is {budget}: raise "
                                "processor.max_prompt_tokens (the end of the instruction would be lost)")
        enc = self.tokenizer(list(prompts), padding="max_length", truncation=False, max_length=budget,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}

    # the batch ----------------------------------------------------------------------------------------------
    def __call__(self, agent_inputs: Sequence[AgentInput], target_poses: Optional[ArrayLike] = None) -> dict:
        """Batch dict: pixel_values (B, n_cams, 3, H, W), input_ids / attention_mask (B, L), raw proprio (B, P);
        with target_poses (B, 8, 3): also raw ``target_poses`` (the model normalises both)."""
        if isinstance(agent_inputs, AgentInput):
            agent_inputs = [agent_inputs]
        if len(agent_inputs) == 0:
            raise VLAInputError("agent_inputs", "empty batch")
        batch = {
            "pixel_values": torch.stack([self.images(a) for a in agent_inputs]),
            **self.tokenize([self.build_prompt(a) for a in agent_inputs]),
            "proprio": torch.from_numpy(self.proprio_array(agent_inputs)),
        }
        if target_poses is not None:
            poses = torch.as_tensor(np.asarray(target_poses, dtype=np.float32))
            expected = (len(agent_inputs), NUM_TRAJECTORY_POSES, 3)
            if tuple(poses.shape) != expected:
                raise VLAInputError("target_poses", f"expected shape {expected}, got {tuple(poses.shape)}")
            if not torch.isfinite(poses).all():
                raise VLAInputError("target_poses", "contains NaN or inf")
            batch["target_poses"] = poses
        return batch


AutoProcessor.register(DipoleVLAConfig, DipoleProcessor, exist_ok=True)
