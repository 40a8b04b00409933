"""The fine-tuning loop: stages in order, checkpoints, resume, logging, evaluation.

Stages run in the order of ``config.stages``; each is a plug-in of ``vla.training.stages`` (il, dipole, ewr,
...) that says what trains, how its data is collected and how a micro-batch is built. Each stage starts from
the previous stage's saved policy (``<output_dir>/il_model`` is mu_0) and gets its own optimizer and
accelerate/DeepSpeed engine. The trainer sees only a reward callable and an evaluation callable
(``eval_contract.EvalFn``); it never imports a scorer or the evaluation harness.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from data_pipelines.configuration import config_to_dict
from vla.training import distributed
from vla.training.checkpoint import (
    CheckpointWriter, TrainerState, agree_loaded, buffer_path, check_compatible, latest_checkpoint,
    load_accelerate_state, read_checkpoint_file, read_state, restore_rng_states,
)
from vla.training.config import TrainConfig
from vla.training.data import SceneBatcher, item_ego_inputs, item_targets, item_tokens, items_shard
from vla.training.errors import CorruptCheckpointError, EmptyDataError, TrainingError
from vla.training.eval_contract import EvalFn, EvalPolicy
from vla.training.optim import build_optimizer, build_scheduler
from vla.training.pause_points import pause_point
from vla.training.rewards import RewardFn
from vla.training.rollout import RolloutBuffer
from vla.training.stages import Stage, get_stage

IL_MODEL_DIRNAME = "il_model"
FINAL_MODEL_DIRNAME = "model"
SCHEDULER_FILENAME = "lr_scheduler.pt"
RESULTS_TABLE_FILENAME = "results.md"
RESULTS_JSON_FILENAME = "results.json"
DRIFT_PROBE_SCENES = 16  # scenes per process used to monitor the drift from mu_0 on fixed noise (§6, §8)
HISTORY_IN_RESULTS = 200  # last logged rows kept in results.json


class StopTraining(Exception):
    """Raised after the checkpoint at ``config.stop_after_steps``; the run ends cleanly."""


class PolicyObjective(torch.nn.Module):
    """Routes the training losses through ``forward`` so DDP / DeepSpeed hooks (grad sync, ZeRO-3 gathers) fire."""

    def __init__(self, policy: torch.nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, objective: str, batch: dict, **kwargs):
        if objective == "il":
            return self.policy.loss_il(batch, **kwargs)
        if objective == "dipole":
            return self.policy.loss_dipole(batch, **kwargs)
        if objective == "ewr":
            return self.policy.loss_ewr(batch, **kwargs)
        raise ValueError(f"unknown objective {objective!r}")


def enable_activation_checkpointing(policy: torch.nn.Module) -> None:
    """Recompute activations in backward: the DiT head's blocks and the backbone's transformer."""
    head = getattr(policy, "head", None)
    if head is not None and hasattr(head, "gradient_checkpointing"):
        head.gradient_checkpointing = True
    backbone = getattr(policy, "backbone", None)
    if backbone is not None and hasattr(backbone, "enable_gradient_checkpointing"):
        backbone.enable_gradient_checkpointing()


@dataclass
class StageContext:
    """The live objects of one stage."""

    stage: Stage
    policy: torch.nn.Module  # the unwrapped DipoleVLA
    engine: Any  # prepared PolicyObjective (DDP / DeepSpeed engine / plain module)
    optimizer: Any
    scheduler: Any


class Trainer:
    """Runs ``config.stages`` with an accelerate ``Accelerator``; see the module docstring."""

    drift_probe_scenes = DRIFT_PROBE_SCENES

    def __init__(
        self,
        config: TrainConfig,
        accelerator,
        train_items: Sequence[dict],
        train_reward: Optional[RewardFn] = None,
        eval_fn: Optional[EvalFn] = None,
    ):
        self.cfg = config
        self.acc = accelerator
        self.output_dir = Path(config.output_dir)
        self.il_model_dir = self.output_dir / IL_MODEL_DIRNAME
        self.train_items = train_items
        self.train_reward = train_reward
        self.eval_fn = eval_fn
        self.writer = CheckpointWriter(accelerator, self.output_dir, keep=config.keep_checkpoints)
        self.state = TrainerState()
        self.resumed_from: Optional[Path] = None  # the checkpoint this run resumed from
        self.history: list[dict] = []
        self.stages = {name: get_stage(name)(self) for name in config.stages}
        if len(train_items) == 0:
            raise EmptyDataError("training split has no scenes")
        self.train_items_sharded = items_shard(train_items) is not None and accelerator.num_processes > 1
        self.train_scenes_digest = self._train_scenes_digest()
        needs_reward = [name for name, stage in self.stages.items() if stage.needs_reward]
        if needs_reward and train_reward is None:
            raise TrainingError(f"stages {needs_reward} need a reward function for rollouts")

    def _train_scenes_digest(self) -> str:
        """Digest of the run's training scenes (of every process's shard when each holds its own)."""
        digest = hashlib.sha1("\n".join(item_tokens(self.train_items)).encode()).hexdigest()[:16]
        if not self.train_items_sharded:
            return digest
        return hashlib.sha1("\n".join(self.gather_from_processes(digest)).encode()).hexdigest()[:16]

    def gather_from_processes(self, value: Any) -> list:
        """``value`` of every process, in process order (collective: every process calls it)."""
        from accelerate.utils import gather_object

        return list(gather_object([value]))

    # ------------------------------------------------------------------------------------------ logging
    @property
    def is_main(self) -> bool:
        return self.acc.is_main_process

    def log(self, metrics: dict, step: Optional[int] = None, prefix: str = "") -> None:
        step = self.state.global_step if step is None else step
        clean = {f"{prefix}{k}": float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
        if self.cfg.tensorboard and self.acc.trackers:
            self.acc.log(clean, step=step)
        self.history.append({"step": step, **clean})

    def print(self, text: str) -> None:
        if self.is_main:
            print(text, flush=True)

    def progress(self, total: Optional[int] = None, desc: str = "", initial: int = 0):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, initial=initial, disable=not (self.is_main and self.cfg.progress_bars),
                    dynamic_ncols=True, leave=False)

    def wrap_progress(self, desc: str):
        from tqdm.auto import tqdm

        return lambda iterable: tqdm(iterable, desc=desc, disable=not (self.is_main and self.cfg.progress_bars),
                                     dynamic_ncols=True, leave=False)

    # ------------------------------------------------------------------------------------------ distributed
    def autocast(self):
        return distributed.autocast(self.acc)

    def gathered(self, ctx: StageContext):
        return distributed.gathered(self.acc, ctx.policy)

    # ------------------------------------------------------------------------------------------ resume
    def fingerprint(self) -> dict:
        """What a checkpoint must agree on to be resumed under this config."""
        model = config_to_dict(self.cfg.model)
        model.pop("gradient_checkpointing", None)
        model.pop("action_normalization", None)  # only a fresh model's statistics; a checkpoint carries its own
        out = {
            "model": model,
            "stages": list(self.cfg.stages),
            "seed": self.cfg.seed,
            "num_processes": self.acc.num_processes,
            "gradient_accumulation_steps": self.cfg.gradient_accumulation_steps,
            "train_scenes": self.train_scenes_digest,
        }
        for stage in self.stages.values():
            out.update(stage.fingerprint())
        return out

    def find_resume_point(self, unloadable: Optional[dict] = None) -> tuple[Path, TrainerState]:
        """Latest complete checkpoint (not among `unloadable`), checked against this config before any
        expensive work."""
        ckpt = latest_checkpoint(self.output_dir, unloadable)
        state = read_state(ckpt)
        check_compatible(ckpt, state, self.fingerprint())
        return ckpt, state

    # ------------------------------------------------------------------------------------------ policies
    def build_initial_policy(self) -> torch.nn.Module:
        """A fresh policy (model preset) or ``model.init_checkpoint``, with normalisation stats of the split."""
        if self.cfg.model.init_checkpoint is not None:
            policy = self.load_policy(Path(self.cfg.model.init_checkpoint))
        else:
            from vla import DipoleVLA
            from vla.presets import build_config

            config = build_config(self.cfg.model.preset, self.cfg.model.overrides)
            with distributed.full_parameter_construction(self.acc):
                if self.cfg.model.load_backbone_weights:
                    policy = DipoleVLA.from_backbone_pretrained(config)
                else:
                    policy = DipoleVLA(config)
        if getattr(policy.config, "normalization", None) in (None, {}):
            from vla import compute_normalization_stats

            # every input is normalised: trajectories and ego state (read without decoding any sensor)
            targets = item_targets(self.train_items)
            proprio = policy.processor.proprio_array(item_ego_inputs(self.train_items))
            if self.train_items_sharded:  # statistics of the whole split: every process's shard
                targets = np.concatenate(self.gather_from_processes(targets))
                proprio = np.concatenate(self.gather_from_processes(proprio))
            one_hot = policy.config.processor_settings.one_hot_proprio_columns
            per_pose = self.cfg.model.action_normalization == "per_pose"
            policy.set_normalization_stats(compute_normalization_stats(targets, proprio, per_timestep=per_pose,
                                                                       one_hot_proprio_columns=one_hot))
        return policy

    def load_policy(self, path: Path) -> torch.nn.Module:
        from vla import DipoleVLA

        with distributed.full_parameter_construction(self.acc):
            return DipoleVLA.from_pretrained(str(path))

    def stage_start_dir(self, stage: str) -> Optional[Path]:
        """The IL policy a later stage starts from: this run's ``il_model`` or ``model.init_checkpoint``."""
        if "il" in self.cfg.stages:
            return self.il_model_dir
        if self.cfg.model.init_checkpoint is None:
            raise TrainingError(f"stage {stage!r} without 'il' needs model.init_checkpoint (an IL policy directory)")
        return Path(self.cfg.model.init_checkpoint)

    def batcher(self, items, policy, name: str) -> SceneBatcher:
        processor = getattr(policy, "processor", None)
        if processor is None:
            raise TrainingError("the policy has no processor (model.processor)")
        return SceneBatcher(items, processor, self.acc.device, self.cfg.seed, self.acc.num_processes,
                            self.acc.process_index, name=name, num_workers=self.cfg.data.num_workers,
                            input_cache_max_mb=self.cfg.data.model_input_cache_max_mb)

    def save_policy(self, ctx: StageContext, directory: Path) -> None:
        """save_pretrained of the (gathered) policy, written atomically by the main process."""
        directory = Path(directory)
        state_dict = distributed.gathered_policy_state(self.acc, ctx.engine)
        if self.is_main:
            tmp = directory.with_name(f".tmp-{directory.name}")
            if tmp.exists():
                shutil.rmtree(tmp)
            kwargs = {} if state_dict is None else {"state_dict": state_dict}
            ctx.policy.save_pretrained(str(tmp), **kwargs)
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        self.acc.wait_for_everyone()

    # ------------------------------------------------------------------------------------------ steps
    def prepare_stage(self, stage: Stage, policy) -> StageContext:
        """Trainable parameters, optimizer, schedule and the accelerate / DeepSpeed engine of a stage."""
        policy.set_trainable(stage.trainable, adapter_modules=getattr(stage.section, "adapter_modules", None))
        if self.cfg.model.gradient_checkpointing:
            enable_activation_checkpointing(policy)
        optim = stage.section.optim
        optimizer = build_optimizer(policy.trainable_parameters(), optim, policy.backbone.parameters())
        scheduler = build_scheduler(optimizer, optim, stage.total_steps())
        distributed.configure_engine(self.acc, stage.micro_batch_size(), self.cfg.gradient_accumulation_steps,
                                     optim.max_grad_norm)
        engine, optimizer = self.acc.prepare(PolicyObjective(policy), optimizer)
        distributed.match_engine_dtype(self.acc, policy)
        return StageContext(stage, policy, engine, optimizer, scheduler)

    def optimizer_step(self, ctx: StageContext, micro_batches: Callable[[int], tuple[str, dict, dict]]) -> dict:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns mean loss terms."""
        ctx.engine.train()
        terms: dict[str, float] = {}
        accum = self.cfg.gradient_accumulation_steps
        max_norm = ctx.stage.section.optim.max_grad_norm
        for micro in range(accum):
            objective, batch, kwargs = micro_batches(micro)
            with self.acc.accumulate(ctx.engine), self.autocast():
                out = ctx.engine(objective, batch, **kwargs)
                loss = out.loss if hasattr(out, "loss") else out
                self.acc.backward(loss)
                if self.acc.sync_gradients and not distributed.clips_gradients_itself(self.acc) and max_norm > 0:
                    self.acc.clip_grad_norm_(ctx.policy.parameters(), max_norm)
                ctx.optimizer.step()
                ctx.optimizer.zero_grad()
            terms["loss"] = terms.get("loss", 0.0) + float(loss.detach()) / accum
            for name, value in (out.parts() if hasattr(out, "parts") else {}).items():
                terms[name] = terms.get(name, 0.0) + float(torch.as_tensor(value).detach()) / accum
        pause_point(f"{ctx.stage.name}.step")
        ctx.scheduler.step()
        terms["lr"] = float(ctx.scheduler.get_last_lr()[0])
        self.state.global_step += 1
        self.state.step_in_stage += 1
        return terms

    def train_steps(self, ctx: StageContext, micro_batches, *, counter: str, total: int, desc: str,
                    report: Callable[[dict], None], buffer: Optional[RolloutBuffer] = None) -> None:
        """Optimizer steps until ``state.<counter>`` reaches ``total``: logs through ``report`` every
        ``log_every`` steps (and at the end), checkpoints every ``checkpoint_every`` steps, honours
        ``stop_after_steps``."""
        bar = self.progress(total=total, desc=desc, initial=getattr(self.state, counter))
        while getattr(self.state, counter) < total:
            terms = self.optimizer_step(ctx, micro_batches)
            if counter != "step_in_stage":
                setattr(self.state, counter, getattr(self.state, counter) + 1)
            done = getattr(self.state, counter)
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.4f}")
            if done % self.cfg.log_every == 0 or done == total:
                report(terms)
            if done < total:
                if self.state.step_in_stage % self.cfg.checkpoint_every == 0:
                    self.checkpoint(ctx, buffer)
                self._maybe_stop(ctx, buffer)
        bar.close()

    def _maybe_stop(self, ctx: StageContext, buffer: Optional[RolloutBuffer] = None) -> None:
        stop = self.cfg.stop_after_steps
        if stop is not None and self.state.global_step >= stop:
            self.checkpoint(ctx, buffer)
            self.print(f"stopping at global step {self.state.global_step} (stop_after_steps={stop})")
            raise StopTraining()

    def finish_stage(self, ctx: StageContext) -> None:
        """The last stage's policy is the run's model; mark the stage done and checkpoint."""
        if self.cfg.stages[-1] == ctx.stage.name:
            self.save_policy(ctx, self.output_dir / FINAL_MODEL_DIRNAME)
        self.state.completed_stages = list(self.state.completed_stages) + [ctx.stage.name]
        pause_point(f"{ctx.stage.name}.end")
        self.checkpoint(ctx)
        self.acc.free_memory()

    # ------------------------------------------------------------------------------------------ checkpoints
    def checkpoint(self, ctx: StageContext, buffer: Optional[RolloutBuffer] = None) -> None:
        self.state.fingerprint = self.fingerprint()
        self.writer.save(self.state, buffer=buffer, extra_files={
            SCHEDULER_FILENAME: lambda path: torch.save(ctx.scheduler.state_dict(), path)})

    def restore(self, ctx: StageContext, ckpt: Path, with_buffer: bool = False) -> Optional[RolloutBuffer]:
        """Load a checkpoint inside the stage of `ctx` (and this process's rollout buffer when asked); an
        unreadable file raises CorruptCheckpointError on every process (``run`` then falls back)."""
        error, buffer = None, None
        try:
            load_accelerate_state(self.acc, ckpt)
            read_checkpoint_file(ckpt, ckpt / SCHEDULER_FILENAME,
                                 lambda path: ctx.scheduler.load_state_dict(torch.load(path, weights_only=False)))
            if with_buffer:
                buffer = self.load_buffer(ckpt)
        except CorruptCheckpointError as raised:
            error = raised
        agree_loaded(self.acc, ckpt, error)
        return buffer

    def load_buffer(self, ckpt: Path) -> RolloutBuffer:
        path = buffer_path(ckpt, self.acc.process_index)
        if path is None:
            raise CorruptCheckpointError(ckpt, ckpt / f"rollout_buffer_rank{self.acc.process_index}.npz", "missing")
        return read_checkpoint_file(ckpt, path, RolloutBuffer.load)

    # ------------------------------------------------------------------------------------------ run
    def run(self, resume: bool = False) -> dict:
        """Run every stage (resuming from the latest checkpoint if asked), then evaluate; returns the results.

        A resume checkpoint whose files verify but do not load falls back to the newest one before it."""
        unloadable: dict[Path, CorruptCheckpointError] = {}
        while True:
            try:
                return self._run(resume, unloadable)
            except CorruptCheckpointError as error:
                ckpt = Path(error.checkpoint)
                if not resume or ckpt != self.resumed_from or ckpt in unloadable:
                    raise
                unloadable[ckpt] = error
                self.acc.free_memory()  # drop the engine prepared for it
                self.state, self.history = TrainerState(), []

    def _run(self, resume: bool, unloadable: dict) -> dict:
        ckpt: Optional[Path] = None
        self.resumed_from = None
        if resume:
            ckpt, self.state = self.find_resume_point(unloadable)
            self.resumed_from = ckpt
            self.print(f"resuming from {ckpt} (stage {self.state.stage!r}, round {self.state.round_index}, "
                       f"step {self.state.step_in_stage}, global step {self.state.global_step})")
        else:
            from accelerate.utils import set_seed

            set_seed(self.cfg.seed + self.acc.process_index)
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        threads = distributed.use_cpu_threads(self.acc.device, self.acc.num_processes, self.cfg.cpu_threads)
        self.print(f"[setup] {distributed.describe(self.acc)}, stages {list(self.cfg.stages)}"
                   + (f", {threads} CPU thread(s) per process" if threads else ""))
        for index, name in enumerate(self.cfg.stages):
            if name in self.state.completed_stages:
                continue
            resume_here = ckpt if (ckpt is not None and self.state.stage == name) else None
            if resume_here is None and ckpt is not None:  # the checkpoint ended the previous stage
                error = None
                try:
                    restore_rng_states(ckpt, self.acc.process_index)
                except CorruptCheckpointError as raised:
                    error = raised
                agree_loaded(self.acc, ckpt, error)
            if resume_here is None:
                self.state = replace(self.state, stage=name, stage_index=index, round_index=0, step_in_stage=0,
                                     step_in_round=0, round_has_buffer=False)
            try:
                self.stages[name].run(resume_here)
            except StopTraining:
                self.acc.free_memory()
                return {}
            ckpt = None
        return self.final_evaluation()

    # ------------------------------------------------------------------------------------------ evaluation
    def _evaluate(self, policies: Sequence[EvalPolicy], run_name: str):
        for entry in policies:
            entry.policy.eval()
        return self.eval_fn(policies, run_name)

    def evaluate_round(self, ctx: StageContext, stage: Stage, round_index: int) -> None:
        """The live policy on the eval split; logged under ``<stage>_eval/``."""
        if not self.cfg.eval.enabled or self.eval_fn is None:
            return
        with self.gathered(ctx), self.autocast():
            report = self._evaluate(stage.round_policies(ctx.policy), f"{stage.name}_round{round_index}")
        for label, entry in report.results.items():
            self.log(entry, prefix=f"{stage.name}_eval/{label}/")
        self.print(f"[{stage.name}] round {round_index} eval:\n{report.table}")

    def final_evaluation(self) -> dict:
        """Results table of the run's policies (the last stage decides which), written to results.md."""
        if not self.cfg.eval.enabled:
            return {}
        if self.eval_fn is None:
            self.print("no evaluation function: skipping evaluation")
            return {}
        final = self.load_policy(self.output_dir / FINAL_MODEL_DIRNAME).to(self.acc.device)

        def load_il():
            il_dir = self.il_model_dir if "il" in self.cfg.stages else self.cfg.model.init_checkpoint
            return None if il_dir is None else self.load_policy(Path(il_dir)).to(self.acc.device)

        report = self._evaluate(self.stages[self.cfg.stages[-1]].final_policies(final, load_il), "final")
        pause_point("final_evaluation")
        if self.is_main:
            (self.output_dir / RESULTS_TABLE_FILENAME).write_text(report.table)
            payload = {"results": {k: dict(v) for k, v in report.results.items()},
                       "history": self.history[-HISTORY_IN_RESULTS:]}
            (self.output_dir / RESULTS_JSON_FILENAME).write_text(json.dumps(payload, indent=2, sort_keys=True))
            self.print("\nResults on the eval split:\n" + report.table)
        for label, entry in report.results.items():
            self.log(dict(entry), prefix=f"eval/{label}/")
        self.acc.wait_for_everyone()
        return {k: dict(v) for k, v in report.results.items()}
