"""Imitation warm start: denoising regression of the base head on the logged trajectories (mu_0)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from data_pipelines.types import TURN_COMMAND_SIGNS
from vla.training.data import item_ego_inputs
from vla.training.errors import TrainingError
from vla.training.stages.base import Stage, register_stage

IL_DATA_SALT = 0  # sample-stream salt of the IL scene order


def turning_scenes(items: Sequence[dict]) -> np.ndarray:
    """Per scene: whether its current driving command turns (left or right). Read from the ego statuses, without
    decoding any sensor."""
    commands = [inputs.ego_statuses[-1].command for inputs in item_ego_inputs(items)]
    return np.isin(commands, list(TURN_COMMAND_SIGNS))


def turn_command_repeats(items: Sequence[dict], repeats: int) -> Optional[np.ndarray]:
    """Per-scene counts for the IL stream: ``repeats`` where the current driving command turns, else 1 (None
    when ``repeats`` is 1)."""
    if repeats == 1:
        return None
    return np.where(turning_scenes(items), int(repeats), 1)


def _require_both(setting: str, weight: float, module, what: str, model_setting: str) -> None:
    """An auxiliary loss needs its module and the module its loss: refuse a weight without the module or the
    module without a weight (``model_setting`` > 0 builds the module)."""
    if (weight > 0) != (module is not None):
        raise TrainingError(f"{setting} = {weight} with a model {'with' if module is not None else 'without'} {what}: "
                            f"set both ({model_setting} > 0 in the model and a weight > 0) or neither")


@register_stage
class ImitationStage(Stage):
    name = "il"
    trainable = "base"
    builds_policy = True

    def total_steps(self) -> int:
        return int(self.section.steps)

    def fingerprint(self) -> dict:
        out = super().fingerprint()
        if self.section.turn_command_repeats != 1:  # it changes the data order (absent at 1: older checkpoints match)
            out["il.turn_command_repeats"] = int(self.section.turn_command_repeats)
        if self.section.mirror_augmentation != "off":  # it adds scenes the order draws from
            out["il.mirror_augmentation"] = self.section.mirror_augmentation
        return out

    def training_items(self, policy):
        """The train split's items, with the BEV decoder's targets when its loss is on (``il.bev_loss_weight``),
        followed by mirrored copies with ``il.mirror_augmentation`` (of every scene, or of those whose driving
        command does not turn)."""
        t, weight = self.trainer, self.section.bev_loss_weight
        _require_both("il.bev_loss_weight", weight, getattr(policy, "bev_decoder", None), "a BEV decoder", "bev.cells")
        _require_both("il.scene_plan_loss_weight", self.section.scene_plan_loss_weight,
                      getattr(policy, "scene_plan_probe", None), "a scene-plan probe", "scene_plan.hidden_size")
        items = t.train_items
        if weight > 0:
            from data_pipelines.paths import DataPaths
            from vla.training.bev_targets import BevTargetItems

            paths = DataPaths.from_env(openscene_data_root=t.cfg.data.data_root, maps_root=t.cfg.data.maps_root)
            items = BevTargetItems(items, policy.config.bev_settings, paths)
        if self.section.mirror_augmentation != "off":
            from vla.training.mirror import MirroredItems

            no_turn = self.section.mirror_augmentation == "no_turn"
            items = MirroredItems(items, np.flatnonzero(~turning_scenes(items)) if no_turn else None)
        return items

    def run(self, ckpt: Optional[Path]) -> None:
        t, sec = self.trainer, self.section
        policy = t.build_initial_policy()
        ctx = t.prepare_stage(self, policy)
        if ckpt is not None:
            t.restore(ctx, ckpt)
        batcher = t.batcher(self.training_items(policy), policy, "train split")
        extra = {"bev_weight": float(sec.bev_loss_weight)} if sec.bev_loss_weight > 0 else {}
        if sec.scene_plan_loss_weight > 0:
            extra["scene_plan_weight"] = float(sec.scene_plan_loss_weight)
        if sec.proprio_dropout > 0:
            extra["proprio_dropout"] = float(sec.proprio_dropout)
        accum = self.cfg.gradient_accumulation_steps
        t0, first_step = time.perf_counter(), t.state.step_in_stage

        repeats = turn_command_repeats(batcher.items, sec.turn_command_repeats)
        epoch_scenes = None if repeats is None else batcher.repeated_scenes(repeats)

        def indices(micro_step: int):
            return batcher.stream_indices(micro_step, sec.batch_size, salt=IL_DATA_SALT, epoch_scenes=epoch_scenes)

        # the sample stream from this step on, loaded ahead by the data workers
        batches = batcher.stream(map(indices, itertools.count(t.state.step_in_stage * accum)), with_targets=True)

        def micro(m: int):
            return "il", batches.take(indices(t.state.step_in_stage * accum + m)), extra

        def report(terms: dict) -> None:
            done = t.state.step_in_stage - first_step
            terms["samples_per_s"] = done * sec.batch_size * accum * t.acc.num_processes / max(
                1e-9, time.perf_counter() - t0)
            t.log(terms, prefix="il/")
            t.print(f"[il] step {t.state.step_in_stage}/{sec.steps} loss {terms['loss']:.4f} lr {terms['lr']:.2e}")

        with batches:
            t.train_steps(ctx, micro, counter="step_in_stage", total=sec.steps, desc="IL", report=report)
        t.save_policy(ctx, t.il_model_dir)
        t.finish_stage(ctx)
