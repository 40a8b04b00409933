"""Fine-tune a DipoleVLA policy: imitation warm start, DIPOLE rounds (or the EWR baseline), evaluation.

    accelerate launch launch/finetune.py                       # the CPU demo (configs/train/demo.yaml)
    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml --mixed_precision bf16 launch/finetune.py \\
        --config configs/train/navsim_florence2_large.yaml dipole.rounds=5
    accelerate launch launch/finetune.py --resume              # continue from the last checkpoint

Only wiring: the config, the scenes of the train split, the PDM reward, the evaluation harness (the one
launch/evaluate.py runs) and the trainer are library objects (vla.training, data_pipelines, navsim_eval).
Choosing omega on a validation split is an evaluation: launch/evaluate.py --split VAL --select-omega.
See docs/training.md.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from data_pipelines.configuration import parse_command_line, run_entry_point, save_config
from data_pipelines.paths import DataPaths
from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import load_split
from data_pipelines.scene_loader import SceneLoader
from data_pipelines.torch_dataset import SceneDataset
from vla.training import TrainConfig, Trainer
from vla.training.errors import EmptyDataError, TrainingError
from vla.training.stages import get_stage


CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "train"
DEFAULT_CONFIG = "demo"  # what a run without --config trains: the embedded CPU demo


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[TrainConfig, bool]:
    """(config, resume): ``--config FILE`` (or a preset name; default ``demo``), ``--resume`` and key=value
    overrides in any order; ``--help`` lists every key. Unknown keys fail here, before anything runs."""
    cfg, cli = parse_command_line(TrainConfig, argv, prog="launch/finetune.py", description=__doc__,
                                  switches={"--resume": "continue from the last checkpoint in output_dir"},
                                  preset_dir=CONFIG_DIR, default_preset=DEFAULT_CONFIG)
    return cfg, cli.switches["resume"]


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration

    # DeepSpeed without CUDA: accelerate would let DeepSpeed pick its backend and count one process; gloo fixes both.
    cpu_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and not torch.cuda.is_available()
    handlers = [InitProcessGroupKwargs(backend="gloo")] if cpu_deepspeed else []
    return Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with="tensorboard" if cfg.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(cfg.output_dir), logging_dir=str(cfg.output_dir / "logs")),
        kwargs_handlers=handlers,
    )


def resolve_data(cfg: TrainConfig, accelerator) -> DataPaths:
    """Dataset paths; the synthetic world is generated (by one process per machine) when asked and missing."""
    data = cfg.data
    paths = DataPaths.from_env(openscene_data_root=data.data_root, maps_root=data.maps_root)
    root = paths.require_data_root()
    has_world = (root / "navsim_logs").is_dir()
    if not data.generate_synthetic:
        if not has_world:
            raise TrainingError(f"data root {root} has no navsim_logs/ (set data.data_root or $OPENSCENE_DATA_ROOT)")
        return paths
    from data_pipelines.synthetic.config import build_config
    from data_pipelines.synthetic.generate import generate_dataset, settings_differing_from

    requested = build_config(data.synthetic_preset, list(data.synthetic_overrides))
    if not has_world:
        if accelerator.is_local_main_process:
            print(f"generating the synthetic world ({data.synthetic_preset}) into {root}", flush=True)
            generate_dataset(requested, root)
        accelerator.wait_for_everyone()
    elif accelerator.is_local_main_process:
        # a world generated earlier (another version's defaults, or other settings) is used as it is: say so
        differing = settings_differing_from(root, requested)
        if differing:
            changes = ", ".join(f"{key}: {was} here, {wanted} in {data.synthetic_preset!r}"
                                for key, (was, wanted) in sorted(differing.items()))
            print(f"note: using the synthetic world at {root} as it is; it was generated with other settings "
                  f"({changes}); delete it to regenerate", flush=True)
    return paths


def split_path(cfg: TrainConfig, paths: DataPaths, name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    return (cfg.data.splits_dir or paths.splits_dir()) / f"{name}.yaml"


def load_items(cfg: TrainConfig, paths: DataPaths, split_name: str, max_scenes: Optional[int], accelerator=None):
    """(split, scene items) of a split; an empty split or a missing folder raises before any training work.

    With several processes each loads only its own shard of the split's logs (and at most
    ceil(max_scenes / processes) of their scenes)."""
    split = load_split(split_path(cfg, paths, split_name))
    processes = 1 if accelerator is None else accelerator.num_processes
    shard = (accelerator.process_index, processes) if processes > 1 else None
    if max_scenes is not None:
        split = replace(split, scene_filter=replace(split.scene_filter, max_scenes=-(-max_scenes // processes)))
    loader = SceneLoader.from_split(split, paths, sensor_config=SensorConfig.front_three_current(), shard=shard)
    loader.check_sensor_files()  # a missing camera image is an error now, not when its scene is first batched
    return split, SceneDataset(loader, cache_agent_inputs=cfg.data.cache_agent_inputs,
                               cache_max_mb=cfg.data.agent_input_cache_max_mb)


def make_eval_fn(cfg: TrainConfig, paths: DataPaths, accelerator):
    """The evaluation harness of ``launch/evaluate.py`` as the trainer's ``eval_fn``: same split, omegas,
    seed and sampler, so training's results table equals an evaluation run's summary of the same model."""
    import shutil

    from navsim_eval.evaluation import EvaluationConfig, ModelPlanner, from_accelerate, run_pipeline
    from navsim_eval.evaluation.pipeline import build_sources, table_results
    from navsim_eval.evaluation.scorers import NativeScorer
    from vla.sampling import PolicySampler
    from vla.training.eval_contract import EvalReport

    ev, data = cfg.eval, cfg.data
    split = str(split_path(cfg, paths, data.eval_split)) if data.splits_dir is not None else data.eval_split

    def config(run_name: str) -> EvaluationConfig:
        return EvaluationConfig(
            split=split, data_root=str(paths.require_data_root()), maps_root=str(paths.require_maps_root()),
            omegas=tuple(ev.omegas), num_steps=ev.num_steps, num_samples=ev.num_samples, seeds=(ev.seed,),
            metrics=(cfg.reward.version,), baselines=(), batch_size=ev.batch_size, num_workers=data.num_workers,
            output_dir=str(cfg.output_dir / "eval" / run_name), two_stage="off", max_scenes=data.max_eval_scenes,
            report_worst=0, report_sample=0, progress=cfg.progress_bars)

    dist = from_accelerate(accelerator)
    # One scorer for every evaluation of the run: each eval scene's metric cache is built once and stored.
    scorer = NativeScorer((data.metric_cache_dir or cfg.output_dir / "metric_cache") / "eval", build_missing=True)
    sources = build_sources(config("check"), distributed=dist)  # a missing or empty split fails here, before training
    if not sources[0].tokens:
        raise EmptyDataError(f"evaluation split {data.eval_split!r} has no scenes")

    def eval_fn(policies, run_name: str) -> EvalReport:
        run = config(run_name)
        if dist.is_main and Path(run.output_dir).exists():  # a fresh evaluation, never rows of an earlier run
            shutil.rmtree(run.output_dir)
        dist.barrier()
        planners = [ModelPlanner(PolicySampler(p.policy), name=p.name, omegas=p.omegas or run.omegas,
                                 seeds=run.seeds, num_samples=run.num_samples, num_steps=run.num_steps,
                                 mode=p.mode) for p in policies]
        outputs = run_pipeline(run, planners, sources=sources, scorer=scorer, distributed=dist)
        return EvalReport(table_results(outputs.rows, cfg.reward.version), outputs.summary_text)

    return eval_fn


def make_reward(cfg: TrainConfig, paths: DataPaths, items, name: str):
    """The PDM scorer as a reward callable over the scenes already loaded in `items` (logs are not read again);
    metric caches are built on first use under the cache folder."""
    from navsim_eval.reward import PDMReward

    cache_dir = (cfg.data.metric_cache_dir or cfg.output_dir / "metric_cache") / name
    return PDMReward.from_loader(items.loader, paths, cache_dir, version=cfg.reward.version,
                                 num_workers=cfg.reward.num_workers, weights=cfg.reward.weights)


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg, resume = parse_args(argv)
    accelerator = make_accelerator(cfg)
    paths = resolve_data(cfg, accelerator)
    _, train_items = load_items(cfg, paths, cfg.data.train_split, cfg.data.max_train_scenes, accelerator)
    needs_rollouts = any(get_stage(stage).needs_reward for stage in cfg.stages)
    train_reward = make_reward(cfg, paths, train_items, "train") if needs_rollouts else None  # lazy: caches on use
    eval_fn = make_eval_fn(cfg, paths, accelerator) if cfg.eval.enabled else None
    trainer = Trainer(cfg, accelerator, train_items, train_reward, eval_fn)
    if resume:
        trainer.find_resume_point()  # incompatible / missing checkpoint: fail before caches are built
    if accelerator.is_main_process:
        save_config(cfg, cfg.output_dir / "train_config.yaml")
    if cfg.tensorboard:
        from data_pipelines.configuration import config_to_dict

        flat = {k: str(v) for k, v in config_to_dict(cfg).items()}
        accelerator.init_trackers(cfg.name, config=flat)
    trainer.run(resume=resume)
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
