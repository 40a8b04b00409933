"""Evaluate a DipoleVLA checkpoint (and baselines) on a split with the native PDM scorer.

    python launch/evaluate.py checkpoint=CKPT data_root=DATA omegas=0,0.5,1,2 metrics=v1,v2
    python launch/evaluate.py --checkpoint CKPT --omegas 0,1 --no-progress   # the same keys spelled as flags
    python launch/evaluate.py --help                  # every key with type, default and help
    accelerate launch launch/evaluate.py ...          # one process per GPU, scenes sharded by rank

Writes <output_dir>/results.csv (per token, every sub-metric), summary.md (paper-layout tables, also
printed), two_stage.csv for two-stage splits, and report/ PNGs. A rerun resumes from results.csv.
With --select-omega (e.g. on a validation split) the best omega is also written to selected_omega.json.
"""

from __future__ import annotations

import logging
import sys

from data_pipelines.configuration import parse_command_line, run_entry_point
from navsim_eval.evaluation import EvaluationConfig, ModelPlanner, from_accelerate, run_pipeline
from navsim_eval.evaluation.pipeline import build_sources, default_planners
from vla.sampling import PolicySampler
from vla.training.distributed import use_cpu_threads


def parse_args(argv=None) -> EvaluationConfig:
    config, _ = parse_command_line(EvaluationConfig, argv, prog="launch/evaluate.py", description=__doc__)
    return config


def load_model(path: str, device, dtype: str):
    from vla import DipoleVLA

    return DipoleVLA.from_pretrained(path, dtype=dtype).to(device).eval()


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    dist = from_accelerate()
    threads = use_cpu_threads(dist.device, dist.world_size, config.cpu_threads)
    if threads:
        logging.getLogger("launch.evaluate").info("%d CPU thread(s) per process", threads)
    planners, model = [], None
    if config.checkpoint:
        model = load_model(config.checkpoint, dist.device, config.dtype)
        planners.append(ModelPlanner(PolicySampler(model), name="dipole", omegas=config.omegas, seeds=config.seeds,
                                     num_samples=config.num_samples, num_steps=config.num_steps))
    if "il" in config.baselines:
        if not (config.il_checkpoint or model is not None):
            raise SystemExit("the 'il' baseline needs il_checkpoint or checkpoint")
        il_model = load_model(config.il_checkpoint, dist.device, config.dtype) if config.il_checkpoint else model
        planners.append(ModelPlanner(PolicySampler(il_model), name="il", seeds=config.seeds,
                                     num_samples=config.num_samples, num_steps=config.num_steps, mode="base"))
    planners += default_planners(config)
    if not planners:
        raise SystemExit("nothing to evaluate: set checkpoint and/or baselines")
    outputs = run_pipeline(config, planners, sources=build_sources(config, distributed=dist),
                           distributed=dist)
    if dist.is_main:
        print(outputs.summary_text)
        print(f"\nper-token results: {outputs.results_csv}\nsummary: {outputs.summary_md}")
        if outputs.two_stage_csv:
            print(f"two-stage groups: {outputs.two_stage_csv}")
        print(f"report files: {len(outputs.report_files)} under {outputs.results_csv.parent / 'report'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
