"""Evaluate a DipoleVLA checkpoint (and baselines) on a split with the native PDM scorer.

    python launch/evaluate.py --checkpoint CKPT --data-root DATA --omega 0,0.5,1,2 --metrics v1,v2
    accelerate launch launch/evaluate.py ...          # one process per GPU, scenes sharded by rank

Writes <output-dir>/results.csv (per token, every sub-metric), summary.md (paper-layout tables, also
printed), two_stage.csv for two-stage splits, and report/ PNGs. A rerun resumes from results.csv.
"""

from __future__ import annotations

import argparse
import logging
import sys

from navsim_eval.evaluation import EvaluationConfig, ModelPlanner, from_accelerate, run_pipeline
from navsim_eval.evaluation.pipeline import build_sources, default_planners


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_args(argv=None) -> EvaluationConfig:
    defaults = EvaluationConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="DipoleVLA.from_pretrained path or id (omit to run baselines only)")
    p.add_argument("--dtype", default=defaults.dtype,
                   help="model weights dtype: auto (as stored in the checkpoint), float32, bfloat16, float16")
    p.add_argument("--split", default=defaults.split, help="split name under <data-root>/splits or a split YAML")
    p.add_argument("--data-root", help="dataset root (default $OPENSCENE_DATA_ROOT)")
    p.add_argument("--maps-root", help="map root (default $NUPLAN_MAPS_ROOT or <data-root>/maps)")
    p.add_argument("--omega", type=_floats, default=defaults.omegas, help="comma-separated omegas, e.g. 0,0.5,1,2")
    p.add_argument("--num-steps", type=int, help="denoising steps (default: the checkpoint's)")
    p.add_argument("--num-samples", type=int, default=defaults.num_samples, help="samples per scene and omega")
    p.add_argument("--seeds", type=_ints, default=defaults.seeds, help="comma-separated sampling seeds")
    p.add_argument("--metrics", type=_names, default=defaults.metrics, help="v1 (PDMS), v2 (EPDMS) or v1,v2")
    p.add_argument("--baselines", type=_names, default=defaults.baselines,
                   help="comma-separated: constant_velocity, human, il ('' for none)")
    p.add_argument("--il-checkpoint", help="IL-only checkpoint for the 'il' baseline (default: --checkpoint)")
    p.add_argument("--output-dir", default=defaults.output_dir)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--max-scenes", type=int, help="evaluate only the first N scenes")
    p.add_argument("--metric-cache-dir", help="metric caches per version (<dir>/v1, <dir>/v2); default: build")
    p.add_argument("--two-stage", choices=("auto", "on", "off"), default=defaults.two_stage)
    p.add_argument("--two-stage-root", help="two-stage data folder (default <data-root>/<split>_two_stage)")
    p.add_argument("--report-worst", type=int, default=defaults.report_worst)
    p.add_argument("--report-sample", type=int, default=defaults.report_sample)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    return EvaluationConfig(
        split=a.split, data_root=a.data_root, maps_root=a.maps_root, checkpoint=a.checkpoint,
        il_checkpoint=a.il_checkpoint, dtype=a.dtype, omegas=a.omega, num_steps=a.num_steps, num_samples=a.num_samples,
        seeds=a.seeds, metrics=a.metrics, baselines=a.baselines, batch_size=a.batch_size, output_dir=a.output_dir,
        metric_cache_dir=a.metric_cache_dir, two_stage=a.two_stage, two_stage_root=a.two_stage_root,
        max_scenes=a.max_scenes, report_worst=a.report_worst, report_sample=a.report_sample,
        progress=not a.no_progress,
    )


def load_model(path: str, device, dtype: str):
    from vla import DipoleVLA

    return DipoleVLA.from_pretrained(path, dtype=dtype).to(device).eval()


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    dist = from_accelerate()
    planners, model = [], None
    if config.checkpoint:
        model = load_model(config.checkpoint, dist.device, config.dtype)
        planners.append(ModelPlanner(model, name="dipole", omegas=config.omegas, seeds=config.seeds,
                                     num_samples=config.num_samples, num_steps=config.num_steps))
    if "il" in config.baselines:
        if not (config.il_checkpoint or model is not None):
            raise SystemExit("the 'il' baseline needs --il-checkpoint or --checkpoint")
        il_model = load_model(config.il_checkpoint, dist.device, config.dtype) if config.il_checkpoint else model
        planners.append(ModelPlanner(il_model, name="il", seeds=config.seeds, num_samples=config.num_samples,
                                     num_steps=config.num_steps, mode="base"))
    planners += default_planners(config)
    if not planners:
        raise SystemExit("nothing to evaluate: pass --checkpoint and/or --baselines")
    outputs = run_pipeline(config, planners, sources=build_sources(config), distributed=dist)
    if dist.is_main:
        print(outputs.summary_text)
        print(f"\nper-token results: {outputs.results_csv}\nsummary: {outputs.summary_md}")
        if outputs.two_stage_csv:
            print(f"two-stage groups: {outputs.two_stage_csv}")
        print(f"report files: {len(outputs.report_files)} under {outputs.results_csv.parent / 'report'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
