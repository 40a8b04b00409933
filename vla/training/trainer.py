"""The fine-tuning loop: imitation warm start, DIPOLE rounds (or the EWR baseline), evaluation, checkpoints.

Stages run in the order of ``config.stages``; each starts from the previous stage's saved policy
(``<output_dir>/il_model`` is mu_0) and gets its own optimizer and accelerate/DeepSpeed engine. A DIPOLE
round (specs/dipole.md §6): roll out K candidates per training scene from the current guided policy
(omega_roll), score them with the reward function, compute G (§5.2), then train the ``positive`` and
``negative`` adapters on the same samples with weights sigma(beta G) and 1 - sigma(beta G) (§3). mu for
round k is the policy at the end of round k-1 (rollouts use no_grad on the live model).

The trainer only sees a reward callable; it never imports a scorer.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from data_pipelines.configuration import config_to_dict
from vla.training.checkpoint import (
    ACCELERATE_DIRNAME, CheckpointWriter, TrainerState, buffer_path, check_compatible, latest_checkpoint,
    read_state,
)
from vla.training.config import DipoleSection, TrainConfig
from vla.training.data import SceneBatcher, chunks, item_targets, item_tokens
from vla.training.errors import EmptyDataError, TrainingError
from vla.training.evaluation import evaluate_policy, reduce_stats, write_results
from vla.training.metrics import rollout_statistics
from vla.training.optim import build_optimizer, build_scheduler
from vla.training.advantages import ewr_weights
from vla.training.rewards import RewardFn
from vla.training.rollout import RolloutBuffer, sample_candidates, score_candidates

IL_MODEL_DIRNAME = "il_model"
FINAL_MODEL_DIRNAME = "model"
SCHEDULER_FILENAME = "lr_scheduler.pt"
DRIFT_PROBE_SCENES = 16  # scenes per process used to monitor the drift from mu_0 on fixed noise (§6, §8)
DRIFT_PROBE_SEED = 4242


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
        raise ValueError(f"unknown objective {objective!r}")


def _loss_value(out) -> torch.Tensor:
    return out.loss if hasattr(out, "loss") else out


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _is_deepspeed(accelerator) -> bool:
    return str(accelerator.distributed_type).endswith("DEEPSPEED")


def _zero_stage(accelerator) -> int:
    if not _is_deepspeed(accelerator):
        return 0
    return int(accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


@contextlib.contextmanager
def full_parameter_construction(accelerator):
    """Build models with whole parameters even under ZeRO-3 (DeepSpeed partitions them at prepare time).

    transformers partitions sub-models built under an active ZeRO-3 config at construction (zero.Init), which
    breaks composite models whose own weight init then touches the empty shards; the policy is small enough
    to be built whole on every process.
    """
    if _zero_stage(accelerator) != 3:
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        accelerator.state.deepspeed_plugin.set_deepspeed_weakref()


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

    name: str
    policy: torch.nn.Module  # the unwrapped DipoleVLA
    engine: Any  # prepared PolicyObjective (DDP / DeepSpeed engine / plain module)
    optimizer: Any
    scheduler: Any
    total_steps: int


class Trainer:
    """Runs ``config.stages`` with an accelerate ``Accelerator``; see the module docstring."""

    def __init__(
        self,
        config: TrainConfig,
        accelerator,
        train_items: Sequence[dict],
        eval_items: Optional[Sequence[dict]] = None,
        train_reward: Optional[RewardFn] = None,
        eval_reward: Optional[RewardFn] = None,
        model_builder: Optional[Callable[[], torch.nn.Module]] = None,
        model_loader: Optional[Callable[[Path], torch.nn.Module]] = None,
    ):
        self.cfg = config
        self.acc = accelerator
        self.output_dir = Path(config.output_dir)
        self.train_items = train_items
        self.eval_items = eval_items
        self.train_reward = train_reward
        self.eval_reward = eval_reward
        self._model_builder = model_builder
        self._model_loader = model_loader
        self.writer = CheckpointWriter(accelerator, self.output_dir, keep=config.keep_checkpoints)
        self.state = TrainerState()
        self.history: list[dict] = []
        if len(train_items) == 0:
            raise EmptyDataError("training split has no scenes")
        needs_reward = any(s in ("dipole", "ewr") for s in config.stages)
        if needs_reward and train_reward is None:
            raise TrainingError(f"stages {list(config.stages)} need a reward function for rollouts")
        if config.eval.enabled and eval_items is not None and len(eval_items) == 0:
            raise EmptyDataError("evaluation split has no scenes")

    # ------------------------------------------------------------------------------------------ helpers
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

        def wrap(iterable):
            return tqdm(iterable, desc=desc, disable=not (self.is_main and self.cfg.progress_bars),
                        dynamic_ncols=True, leave=False)

        return wrap

    def fingerprint(self) -> dict:
        """What a checkpoint must agree on to be resumed under this config."""
        cfg = self.cfg
        tokens = item_tokens(self.train_items)
        model = config_to_dict(cfg.model)
        model.pop("gradient_checkpointing", None)
        return {
            "model": model,
            "stages": list(cfg.stages),
            "seed": cfg.seed,
            "num_processes": self.acc.num_processes,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
            "il.batch_size": cfg.il.batch_size,
            "dipole.batch_size": cfg.dipole.batch_size,
            "dipole.num_candidates": cfg.dipole.rollout.num_candidates,
            "ewr.num_candidates": cfg.ewr.rollout.num_candidates,
            "train_scenes": hashlib.sha1("\n".join(tokens).encode()).hexdigest()[:16],
        }

    def find_resume_point(self) -> tuple[Path, TrainerState]:
        """Latest complete checkpoint, checked against this config before any expensive work."""
        ckpt = latest_checkpoint(self.output_dir)
        state = read_state(ckpt)
        check_compatible(ckpt, state, self.fingerprint())
        return ckpt, state

    # ------------------------------------------------------------------------------------------ models
    def _build_initial_policy(self) -> torch.nn.Module:
        with full_parameter_construction(self.acc):
            return self._build_initial_policy_whole()

    def _build_initial_policy_whole(self) -> torch.nn.Module:
        if self._model_builder is not None:
            policy = self._model_builder()
        elif self.cfg.model.init_checkpoint is not None:
            policy = self._load_policy(Path(self.cfg.model.init_checkpoint))
        else:
            from vla import DipoleVLA
            from vla.presets import build_config

            config = build_config(self.cfg.model.preset, self.cfg.model.overrides)
            if self.cfg.model.load_backbone_weights:
                policy = DipoleVLA.from_backbone_pretrained(config)
            else:
                policy = DipoleVLA(config)
        if getattr(policy.config, "normalization", None) in (None, {}) and hasattr(policy, "set_normalization_stats"):
            from vla import compute_normalization_stats

            targets = item_targets(self.train_items)
            policy.set_normalization_stats(compute_normalization_stats(targets))
        return policy

    def _load_policy(self, path: Path) -> torch.nn.Module:
        if self._model_loader is not None:
            return self._model_loader(path)
        from vla import DipoleVLA

        with full_parameter_construction(self.acc):
            return DipoleVLA.from_pretrained(str(path))

    def _stage_start_dir(self, stage: str) -> Optional[Path]:
        if stage == "il":
            return None
        if "il" in self.cfg.stages:
            return self.output_dir / IL_MODEL_DIRNAME
        if self.cfg.model.init_checkpoint is None:
            raise TrainingError(f"stage {stage!r} without 'il' needs model.init_checkpoint (an IL policy directory)")
        return Path(self.cfg.model.init_checkpoint)

    def _processor(self, policy):
        processor = getattr(policy, "processor", None)
        if processor is None:
            raise TrainingError("the policy has no processor (model.processor)")
        return processor

    def _batcher(self, items, policy, name: str, seed_offset: int = 0) -> SceneBatcher:
        return SceneBatcher(items, self._processor(policy), self.acc.device, self.cfg.seed + seed_offset,
                            self.acc.num_processes, self.acc.process_index, name=name)

    def save_policy(self, ctx: StageContext, directory: Path) -> None:
        """save_pretrained of the (gathered) policy, written atomically by the main process."""
        directory = Path(directory)
        state_dict = None
        if _is_deepspeed(self.acc):
            full = self.acc.get_state_dict(ctx.engine)  # gathers ZeRO-3 shards (collective; None off rank 0)
            prefix = "policy."
            if full is not None:
                state_dict = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in full.items()}
        if self.is_main:
            tmp = directory.with_name(f".tmp-{directory.name}")
            if tmp.exists():
                shutil.rmtree(tmp)
            if state_dict is not None:
                ctx.policy.save_pretrained(str(tmp), state_dict=state_dict)
            else:
                ctx.policy.save_pretrained(str(tmp))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        self.acc.wait_for_everyone()

    def autocast(self):
        """Mixed-precision context for forwards: accelerate's, or bf16/fp16 autocast under DeepSpeed (whose
        engine keeps 16-bit weights but does not cast float inputs such as camera images)."""
        if _is_deepspeed(self.acc):
            ds = self.acc.state.deepspeed_plugin.deepspeed_config
            for key, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                if str(ds.get(key, {}).get("enabled", False)).lower() == "true":
                    return torch.autocast(device_type=self.acc.device.type, dtype=dtype)
            return contextlib.nullcontext()
        return self.acc.autocast()

    @contextlib.contextmanager
    def gathered(self, ctx: StageContext):
        """Full parameters for inference (rollouts, evaluation) under ZeRO-3; a no-op otherwise."""
        if _zero_stage(self.acc) == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(ctx.policy.parameters()), modifier_rank=None):
                yield
        else:
            yield

    def _prepare_stage(self, name: str, policy, optim_cfg, micro_batch: int, total_steps: int) -> StageContext:
        if hasattr(policy, "set_trainable"):
            policy.set_trainable("adapters" if name == "dipole" else "base")
        if self.cfg.model.gradient_checkpointing:
            enable_activation_checkpointing(policy)
        params = policy.trainable_parameters() if hasattr(policy, "trainable_parameters") else policy.parameters()
        optimizer = build_optimizer(params, optim_cfg)
        scheduler = build_scheduler(optimizer, optim_cfg, total_steps)
        objective = PolicyObjective(policy)
        if _is_deepspeed(self.acc):
            ds = self.acc.state.deepspeed_plugin.deepspeed_config
            accum = self.cfg.gradient_accumulation_steps
            ds["train_micro_batch_size_per_gpu"] = int(micro_batch)
            ds["gradient_accumulation_steps"] = accum
            ds["train_batch_size"] = int(micro_batch) * accum * self.acc.num_processes
            ds["gradient_clipping"] = float(optim_cfg.max_grad_norm)
            ds.setdefault("zero_optimization", {})["stage3_gather_16bit_weights_on_model_save"] = True
        engine, optimizer = self.acc.prepare(objective, optimizer)
        return StageContext(name, policy, engine, optimizer, scheduler, total_steps)

    def _release(self, ctx: Optional[StageContext]) -> None:
        if ctx is not None:
            self.acc.free_memory()

    # ------------------------------------------------------------------------------------------ steps
    def _optimizer_step(self, ctx: StageContext, micro_batches: Callable[[int], tuple[str, dict, dict]]) -> dict:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns mean loss terms."""
        ctx.engine.train()
        terms: dict[str, float] = {}
        accum = self.cfg.gradient_accumulation_steps
        for micro in range(accum):
            objective, batch, kwargs = micro_batches(micro)
            with self.acc.accumulate(ctx.engine), self.autocast():
                out = ctx.engine(objective, batch, **kwargs)
                loss = _loss_value(out)
                self.acc.backward(loss)
                if self.acc.sync_gradients and not _is_deepspeed(self.acc):
                    max_norm = self._current_optim_cfg(ctx).max_grad_norm
                    if max_norm and max_norm > 0:
                        self.acc.clip_grad_norm_(ctx.policy.parameters(), max_norm)
                ctx.optimizer.step()
                ctx.optimizer.zero_grad()
            terms["loss"] = terms.get("loss", 0.0) + float(loss.detach()) / accum
            for name, value in (out.parts() if hasattr(out, "parts") else {}).items():
                terms[name] = terms.get(name, 0.0) + float(torch.as_tensor(value).detach()) / accum
        ctx.scheduler.step()
        terms["lr"] = float(ctx.scheduler.get_last_lr()[0])
        self.state.global_step += 1
        self.state.step_in_stage += 1
        return terms

    def _maybe_stop(self, ctx: StageContext, buffer: Optional[RolloutBuffer] = None) -> None:
        stop = self.cfg.stop_after_steps
        if stop is not None and self.state.global_step >= stop:
            self._checkpoint(ctx, buffer)
            self.print(f"stopping at global step {self.state.global_step} (stop_after_steps={stop})")
            raise StopTraining()

    def _current_optim_cfg(self, ctx: StageContext):
        return {"il": self.cfg.il.optim, "dipole": self.cfg.dipole.optim, "ewr": self.cfg.ewr.optim}[ctx.name]

    def _checkpoint(self, ctx: StageContext, buffer: Optional[RolloutBuffer] = None) -> None:
        self.state.fingerprint = self.fingerprint()
        self.writer.save(self.state, buffer=buffer, extra_files={
            SCHEDULER_FILENAME: lambda path: torch.save(ctx.scheduler.state_dict(), path)})

    def _restore(self, ctx: StageContext, ckpt: Path) -> None:
        self.acc.load_state(str(ckpt / ACCELERATE_DIRNAME))
        ctx.scheduler.load_state_dict(torch.load(ckpt / SCHEDULER_FILENAME, weights_only=False))

    # ------------------------------------------------------------------------------------------ run
    def run(self, resume: bool = False) -> dict:
        """Run every stage (resuming from the latest checkpoint if asked), then evaluate; returns the results."""
        ckpt: Optional[Path] = None
        if resume:
            ckpt, self.state = self.find_resume_point()
            self.print(f"resuming from {ckpt} (stage {self.state.stage!r}, round {self.state.round_index}, "
                       f"step {self.state.step_in_stage}, global step {self.state.global_step})")
        else:
            from accelerate.utils import set_seed

            set_seed(self.cfg.seed + self.acc.process_index)
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        zero = _zero_stage(self.acc)
        self.print(f"[setup] {self.acc.num_processes} process(es), {self.acc.distributed_type}"
                   + (f" ZeRO-{zero}" if zero else "") + f", device {self.acc.device}, "
                   f"mixed precision {self.acc.mixed_precision}, stages {list(self.cfg.stages)}")
        for index, stage in enumerate(self.cfg.stages):
            if stage in self.state.completed_stages:
                continue
            resume_here = ckpt if (ckpt is not None and self.state.stage == stage) else None
            if resume_here is None:
                self.state = replace(self.state, stage=stage, stage_index=index, round_index=0, step_in_stage=0,
                                     step_in_round=0, round_has_buffer=False)
            try:
                if stage == "il":
                    self._run_il(resume_here)
                else:
                    self._run_rounds(stage, resume_here)
            except StopTraining:
                self.acc.free_memory()
                return {}
            ckpt = None
        return self.final_evaluation()

    def _run_il(self, ckpt: Optional[Path]) -> None:
        cfg = self.cfg.il
        policy = self._build_initial_policy()
        ctx = self._prepare_stage("il", policy, cfg.optim, cfg.batch_size, cfg.steps)
        if ckpt is not None:
            self._restore(ctx, ckpt)
        batcher = self._batcher(self.train_items, policy, "train split")
        accum = self.cfg.gradient_accumulation_steps
        bar = self.progress(total=cfg.steps, desc="IL", initial=self.state.step_in_stage)
        t0, first_step = time.perf_counter(), self.state.step_in_stage

        def micro(m: int):
            step_index = self.state.step_in_stage * accum + m
            idx = batcher.stream_indices(step_index, cfg.batch_size, salt=0)
            return "il", batcher.batch(idx, with_targets=True), {}

        while self.state.step_in_stage < cfg.steps:
            terms = self._optimizer_step(ctx, micro)
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.4f}")
            if self.state.step_in_stage % self.cfg.log_every == 0 or self.state.step_in_stage == cfg.steps:
                rate = (self.state.step_in_stage - first_step) * cfg.batch_size * accum * self.acc.num_processes
                terms["samples_per_s"] = rate / max(1e-9, time.perf_counter() - t0)
                self.log(terms, prefix="il/")
                self.print(f"[il] step {self.state.step_in_stage}/{cfg.steps} loss {terms['loss']:.4f} "
                           f"lr {terms['lr']:.2e}")
            if self.state.step_in_stage < cfg.steps:
                if self.state.step_in_stage % self.cfg.checkpoint_every == 0:
                    self._checkpoint(ctx)
                self._maybe_stop(ctx)
        bar.close()
        self.save_policy(ctx, self.output_dir / IL_MODEL_DIRNAME)
        if self.cfg.stages[-1] == "il":
            self.save_policy(ctx, self.output_dir / FINAL_MODEL_DIRNAME)
        self.state.completed_stages = list(self.state.completed_stages) + ["il"]
        self._checkpoint(ctx)
        self._release(ctx)

    def _section(self, stage: str) -> DipoleSection:
        return self.cfg.dipole if stage == "dipole" else self.cfg.ewr

    def _run_rounds(self, stage: str, ckpt: Optional[Path]) -> None:
        sec = self._section(stage)
        start_dir = self._stage_start_dir(stage)
        if start_dir is None or not Path(start_dir).is_dir():
            raise TrainingError(f"stage {stage!r}: starting policy {start_dir} does not exist")
        policy = self._load_policy(start_dir)
        total = sec.rounds * sec.steps_per_round
        ctx = self._prepare_stage(stage, policy, sec.optim, sec.batch_size, total)
        batcher = self._batcher(self.train_items, policy, "train split")
        buffer: Optional[RolloutBuffer] = None
        if ckpt is not None:
            self._restore(ctx, ckpt)
            if self.state.round_has_buffer:
                path = buffer_path(ckpt, self.acc.process_index)
                if path is None:
                    raise TrainingError(f"checkpoint {ckpt} lacks the rollout buffer of process "
                                        f"{self.acc.process_index}")
                buffer = RolloutBuffer.load(path)
        probe = batcher.shard(np.arange(len(batcher)))[:DRIFT_PROBE_SCENES]
        while self.state.round_index < sec.rounds:
            r = self.state.round_index
            if buffer is None:
                buffer = self.collect_round(ctx, batcher, sec, r, stage, probe)
                self.state.round_has_buffer = True
                self._checkpoint(ctx, buffer)
            self._train_round(ctx, batcher, sec, buffer, stage)
            self.state.round_index += 1
            self.state.step_in_round = 0
            self.state.round_has_buffer = False
            buffer = None
            self._checkpoint(ctx)
            if sec.eval_every_round:
                self.evaluate_round(ctx, stage, r)
        self.save_policy(ctx, self.output_dir / FINAL_MODEL_DIRNAME)
        self.state.completed_stages = list(self.state.completed_stages) + [stage]
        self._checkpoint(ctx)
        self._release(ctx)

    def collect_round(self, ctx: StageContext, batcher: SceneBatcher, sec: DipoleSection, round_index: int,
                      stage: str, probe: Sequence[int] = ()) -> RolloutBuffer:
        """Roll out and score this process's shard of the round's scenes; log every sub-metric (§8)."""
        ro = sec.rollout
        scenes = batcher.shard(batcher.round_scenes(round_index, ro.scenes_per_round))
        if len(scenes) == 0:
            raise EmptyDataError(f"round {round_index}: process {self.acc.process_index} has no scenes to roll out")
        batches = [(group, batcher.batch(group, with_targets=False)) for group in chunks(scenes, ro.batch_size)]
        gen = torch.Generator(device=self.acc.device).manual_seed(
            self.cfg.seed * 1_000_003 + round_index * 1009 + self.acc.process_index)
        t0 = time.perf_counter()
        ctx.policy.eval()
        with self.gathered(ctx), self.autocast():
            poses = sample_candidates(
                ctx.policy, batches, num_candidates=ro.num_candidates, omega=ro.omega, num_steps=ro.num_steps,
                init_noise_scale=ro.init_noise_scale, generator=gen,
                progress=self.wrap_progress(f"{stage} round {round_index}: rollout"),
            ) if stage == "dipole" else self._sample_base(ctx, batches, ro, gen, round_index)
            drift = self._drift(ctx, batcher, probe, stage)
        t_roll = time.perf_counter() - t0
        tokens = [batcher.token(i) for i in scenes]
        human = batcher.target_poses(scenes) if (ro.score_human or sec.advantage == "G4" or sec.human_anchor) else None
        t0 = time.perf_counter()
        self.print(f"[{stage}] round {round_index}: scoring {poses.shape[0]}x{poses.shape[1]} candidates")
        scored, human_r, human_v = score_candidates(self.train_reward, tokens, poses, human)
        t_score = time.perf_counter() - t0
        buffer = RolloutBuffer(
            round_index=round_index, tokens=tokens, scene_indices=np.asarray(scenes), poses=poses.astype(np.float32),
            rewards=scored.scores, valid=scored.valid, sub_metrics=scored.sub_metrics, human_rewards=human_r,
            human_valid=human_v, errors=scored.errors,
        )
        stats = rollout_statistics(buffer.rewards, buffer.valid, buffer.sub_metrics, buffer.poses)
        if human is not None:
            stats["rollout/human_PDMS"] = (float(np.nansum(np.where(human_v, human_r, 0.0))), float(human_v.sum()))
        if sec.human_anchor:  # the logged trajectory joins the group as one more scored sample (§8 option (a))
            buffer = buffer.with_extra_candidate(human.astype(np.float32), human_r, human_v)
        buffer.compute_advantages(sec.advantage)
        k = ro.num_candidates
        weight_stats = rollout_statistics(
            buffer.rewards[:, :k], buffer.valid[:, :k], {}, buffer.poses[:, :k], buffer.advantages[:, :k],
            buffer.usable[:, :k], beta=sec.beta, weight_offset=sec.weight_offset,
            ewr_max_weight=sec.ewr_max_weight if stage == "ewr" else None,
        )
        stats.update({name: value for name, value in weight_stats.items()
                      if name.startswith(("rollout/mean_", "rollout/frac_ewr"))})
        if drift is not None:
            stats["drift/l2_to_mu0_m"] = drift
        stats["rollout/sampler_nfe"] = (float(ro.num_steps * (2 if ro.omega != 0 else 1)), 1.0)
        stats["time/rollout_s"] = (t_roll, 1.0)
        stats["time/scoring_s"] = (t_score, 1.0)
        stats["rollout/scoring_errors"] = (float(len(buffer.errors)), 1.0)
        means = reduce_stats(self.acc, {"r": stats})["r"]
        self.log(means, prefix=f"{stage}/")
        if self.is_main:
            shown = " ".join(f"{k.split('/', 1)[1]}={v:.3f}" for k, v in sorted(means.items()) if np.isfinite(v))
            self.print(f"[{stage}] round {round_index} rollouts: {shown}")
        for token, message in list(buffer.errors.items())[:5]:
            self.print(f"[{stage}] scoring failed for {token}: {message}")
        return buffer

    def _sample_base(self, ctx, batches, ro, gen, round_index):
        """EWR rollouts: the single base head (no adapters)."""
        out = []
        with torch.no_grad():
            for _, batch in self.wrap_progress(f"ewr round {round_index}: rollout")(batches):
                context = ctx.policy.encode(batch)
                kwargs = {} if ro.init_noise_scale is None else {"init_noise_scale": ro.init_noise_scale}
                poses = ctx.policy.sample(batch, omega=0.0, num_steps=ro.num_steps, num_samples=ro.num_candidates,
                                          context=context, generator=gen, mode="base", **kwargs)
                out.append(poses.float().cpu().numpy())
        return np.concatenate(out, axis=0)

    def _drift(self, ctx, batcher, probe, stage) -> Optional[tuple[float, float]]:
        """Mean L2 (m) between the current rollout policy and mu_0 (the frozen base) on fixed noise."""
        if stage != "dipole" or len(probe) == 0:
            return None
        with torch.no_grad():
            batch = batcher.batch(probe, with_targets=False)
            context = ctx.policy.encode(batch)
            outs = []
            for mode in ("base", "guided"):
                gen = torch.Generator(device=self.acc.device).manual_seed(DRIFT_PROBE_SEED)
                outs.append(ctx.policy.sample(batch, omega=self._section(stage).rollout.omega, num_steps=5,
                                              num_samples=1, context=context, generator=gen, mode=mode))
        diff = torch.linalg.norm(outs[0][..., :2] - outs[1][..., :2], dim=-1).mean(-1).flatten()
        return float(diff.sum()), float(diff.numel())

    def _train_round(self, ctx: StageContext, batcher: SceneBatcher, sec: DipoleSection, buffer: RolloutBuffer,
                     stage: str) -> None:
        rows = buffer.trainable_rows()
        if len(rows) == 0:
            self.print(f"[{stage}] round {buffer.round_index}: no usable group on process "
                       f"{self.acc.process_index}; training on zero-weight samples")
            rows = np.arange(len(buffer))
        accum = self.cfg.gradient_accumulation_steps
        policy = ctx.policy
        use_mask = _accepts(policy.loss_dipole if stage == "dipole" else policy.loss_il, "sample_mask")
        row_rng_seed = [self.cfg.seed, buffer.round_index, self.acc.process_index]

        def micro(m: int):
            pos = self.state.step_in_round * accum + m
            n = len(rows)
            start = pos * sec.batch_size
            positions = np.arange(start, start + sec.batch_size)
            sel = np.empty(sec.batch_size, dtype=np.int64)
            for epoch in np.unique(positions // n):
                perm = np.random.default_rng(row_rng_seed + [int(epoch)]).permutation(n)
                mask = positions // n == epoch
                sel[mask] = rows[perm[positions[mask] % n]]
            batch = batcher.batch(buffer.scene_indices[sel], with_targets=False)
            device = self.acc.device
            batch["target_poses"] = torch.from_numpy(buffer.poses[sel]).to(device)
            g = torch.from_numpy(buffer.advantages[sel]).to(device)
            usable = torch.from_numpy(buffer.usable[sel]).to(device)
            kwargs: dict[str, Any] = {}
            if use_mask:
                kwargs["sample_mask"] = usable
            if stage == "dipole":
                kwargs.update(g=g, beta=sec.beta, normalize_weights=sec.normalize_weights)
                if sec.weight_offset != 0:
                    kwargs["offset"] = sec.weight_offset
                if sec.bc_weight > 0:  # BC anchor on the logged trajectory (specs/dipole.md §8 option (b))
                    kwargs["bc_weight"] = sec.bc_weight
                    kwargs["anchor_poses"] = torch.from_numpy(
                        batcher.target_poses(buffer.scene_indices[sel])).to(device)
                return "dipole", batch, kwargs
            weights = ewr_weights(g, sec.beta, sec.ewr_max_weight) * usable.to(g.dtype)
            kwargs["sample_weights"] = weights
            return "il", batch, kwargs

        bar = self.progress(total=sec.steps_per_round, desc=f"{stage} round {buffer.round_index}: train",
                            initial=self.state.step_in_round)
        while self.state.step_in_round < sec.steps_per_round:
            terms = self._optimizer_step(ctx, micro)
            self.state.step_in_round += 1
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.4f}")
            if self.state.step_in_round % self.cfg.log_every == 0 or self.state.step_in_round == sec.steps_per_round:
                self.log(terms, prefix=f"{stage}/")
                self.print(f"[{stage}] round {buffer.round_index} step {self.state.step_in_round}/"
                           f"{sec.steps_per_round} " + " ".join(f"{k} {v:.4g}" for k, v in terms.items()))
            if self.state.step_in_round < sec.steps_per_round:
                if self.state.step_in_stage % self.cfg.checkpoint_every == 0:
                    self._checkpoint(ctx, buffer)
                self._maybe_stop(ctx, buffer)
        bar.close()

    # ------------------------------------------------------------------------------------------ evaluation
    def _evaluate(self, policy, omegas, labels, mode) -> dict[str, dict[str, float]]:
        ev = self.cfg.eval
        policy.eval()
        batcher = self._batcher(self.eval_items, policy, "eval split", seed_offset=0)
        with self.autocast():
            stats = evaluate_policy(policy, batcher, self.eval_reward, omegas, labels, mode=mode,
                                    num_steps=ev.num_steps, num_samples=ev.num_samples, batch_size=ev.batch_size,
                                    seed=ev.seed, progress=self.wrap_progress(f"eval {labels[0]}"))
        return reduce_stats(self.acc, stats)

    def evaluate_round(self, ctx: StageContext, stage: str, round_index: int) -> None:
        """Every eval omega on the eval split with the live policy; logged under ``<stage>_eval/``."""
        if not self.cfg.eval.enabled or self.eval_items is None or self.eval_reward is None:
            return
        omegas = list(self.cfg.eval.omegas) if stage == "dipole" else [0.0]
        labels = [f"omega={w:g}" for w in omegas]
        with self.gathered(ctx):
            results = self._evaluate(ctx.policy, omegas, labels, "guided" if stage == "dipole" else "base")
        for label, entry in results.items():
            self.log(entry, prefix=f"{stage}_eval/{label}/")
        best = max(results, key=lambda k: results[k].get("PDMS", float("-inf")))
        self.print(f"[{stage}] round {round_index} eval: " + " ".join(
            f"{label} PDMS={100 * entry.get('PDMS', float('nan')):.1f}" for label, entry in results.items())
            + f" (best {best})")

    def final_evaluation(self) -> dict:
        """Results table of the IL policy and of the fine-tuned policy at every eval omega."""
        if not self.cfg.eval.enabled:
            return {}
        if self.eval_items is None or self.eval_reward is None or len(self.eval_items) == 0:
            self.print("no evaluation split / reward function: skipping evaluation")
            return {}
        ev = self.cfg.eval
        final_dir = self.output_dir / FINAL_MODEL_DIRNAME
        il_dir = self.output_dir / IL_MODEL_DIRNAME if "il" in self.cfg.stages else self.cfg.model.init_checkpoint
        results: dict[str, dict[str, float]] = {}

        def run(policy, omegas, labels, mode):
            results.update(self._evaluate(policy, omegas, labels, mode))

        final = self._load_policy(final_dir).to(self.acc.device)
        if "dipole" in self.cfg.stages:
            run(final, [0.0], ["IL (mu_0)"], "base")  # DIPOLE never changes the base head: base == mu_0
            labels = [f"DIPOLE omega={w:g}" for w in ev.omegas]
            run(final, list(ev.omegas), labels, "guided")
        elif "ewr" in self.cfg.stages:
            if il_dir is not None:
                run(self._load_policy(Path(il_dir)).to(self.acc.device), [0.0], ["IL (mu_0)"], "base")
            run(final, [0.0], ["EWR"], "base")
        else:
            run(final, [0.0], ["IL"], "base")
        table = ""
        if self.is_main:
            table = write_results(self.output_dir, results, extra={"history": self.history[-200:]})
            self.print("\nResults on the eval split (percent):\n" + table)
        for label, entry in results.items():
            self.log({k: v for k, v in entry.items()}, prefix=f"eval/{label}/")
        self.acc.wait_for_everyone()
        return results
