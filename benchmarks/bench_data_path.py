"""The training data path (JPEG decode + resize + batching) against the training step, in one run.

    PYTHONPATH=. python benchmarks/bench_data_path.py [--workers 2] [--batch 8] [--batches 6] \\
        [--real-root /tmp/bench_realistic] [--florence-step none|forward|train]

Two synthetic worlds: the ``tiny`` preset (cameras 128x72) and a small subset of the ``realistic`` preset (the
three front cameras the model reads, at 1920x1080 JPEG; generated into ``--real-root`` when missing, 146 s on a
loaded 2-core machine). For each, the scenes/s of the trainer's own loader (``SceneBatcher.stream``: SceneDataset
decode + the model processor's resize + collation, no agent-input cache) with 0 and ``--workers`` DataLoader
workers, timed after the first batch (worker start-up excluded), and in process with the processed-input cache
(``data.model_input_cache_max_mb``) filled by a first pass over the same scenes. Against them, timed just before each row's
loaders: samples/s of one IL optimizer step (``loss_il`` + backward + AdamW) of the ``tiny-florence2`` preset,
and optionally of ``florence2-large`` at its real input size (random weights, the local tokenizer; ``forward``:
the IL loss without backward, a lower bound of the step time; ``train``: forward + backward without the
optimizer update, which needs ~10 GB). Printed: rates and the loader/step ratios (>= 2 means the data path is
not the bottleneck).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data_pipelines.paths import DataPaths
from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import load_split
from data_pipelines.scene_loader import SceneLoader
from data_pipelines.synthetic.config import build_config as build_world_config
from data_pipelines.synthetic.generate import generate_dataset
from data_pipelines.torch_dataset import SceneDataset
from vla import DipoleVLA, compute_normalization_stats
from vla.presets import build_config
from vla.processing_dipole import DipoleProcessor
from vla.training.data import SceneBatcher, item_targets

TRAIN_SPLIT = "synthetic_train"
REAL_SUBSET = ["rendered_cameras=[CAM_F0,CAM_L0,CAM_R0]", "lidar=false", "test_logs_per_instance=0",
               "two_stage_scenes_per_log=0"]
"""The realistic preset cut to what the trainer reads: one train log, the three front cameras at 1920x1080."""
LOCAL_TOKENIZER = ["backbone.tokenizer=null"]  # random weights and no download
CACHE_MB = 4096.0  # processed-input cache of the cached loader: holds every timed scene of either world


def world(root: Path, preset: str, overrides: list[str]) -> Path:
    if not (root / "navsim_logs").is_dir():
        t0 = time.perf_counter()
        generate_dataset(build_world_config(preset, overrides), root)
        print(f"generated {preset} {overrides} into {root} in {time.perf_counter() - t0:.0f} s", flush=True)
    return root


def dataset(root: Path) -> SceneDataset:
    paths = DataPaths.from_env(openscene_data_root=root)
    split = load_split(paths.splits_dir() / f"{TRAIN_SPLIT}.yaml")
    loader = SceneLoader.from_split(split, paths, sensor_config=SensorConfig.front_three_current())
    return SceneDataset(loader, cache_agent_inputs=False)


def loader_rate(items: SceneDataset, processor, workers: int, batch: int, batches: int, cached: bool = False) -> float:
    """Scenes/s of the trainer's batch stream over ``batches`` batches after the first; ``cached``: in process, with
    the processed-input cache filled by a first pass over the same scenes (what every later epoch sees)."""
    batcher = SceneBatcher(items, processor, "cpu", seed=0, num_workers=workers,
                           input_cache_max_mb=CACHE_MB if cached else 0.0)
    lists = [batcher.stream_indices(step, batch) for step in range(batches + 1)]
    if cached:
        with batcher.stream(lists, with_targets=True) as stream:
            for indices in lists:
                stream.take(indices)
    with batcher.stream(lists, with_targets=True) as stream:
        stream.take(lists[0])
        t0 = time.perf_counter()
        for indices in lists[1:]:
            stream.take(indices)
        return batch * batches / (time.perf_counter() - t0)


def step_rate(preset: str, items: SceneDataset, batch: int, steps: int, mode: str) -> float:
    """Samples/s of IL steps of a random-weight model on real batches of ``items``."""
    config = build_config(preset, LOCAL_TOKENIZER)
    policy = DipoleVLA(config)
    policy.set_normalization_stats(compute_normalization_stats(item_targets(items)))
    policy.set_trainable("base")
    policy.train()
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-5) if mode == "step" else None
    batcher = SceneBatcher(items, policy.processor, "cpu", seed=0)
    data = [batcher.batch(batcher.stream_indices(s, batch)) for s in range(steps + 1)]
    times = []
    for data_batch in data:
        t0 = time.perf_counter()
        with torch.set_grad_enabled(mode != "forward"):
            out = policy.loss_il(data_batch)
            loss = out.loss if hasattr(out, "loss") else out
        if mode != "forward":
            loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad()
        else:
            policy.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times[1:]))  # the first step warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the N-worker loader")
    parser.add_argument("--batch", type=int, default=8, help="scenes per batch (loader and tiny step)")
    parser.add_argument("--batches", type=int, default=6, help="timed loader batches / tiny steps")
    parser.add_argument("--tiny-root", type=Path, default=None, help="tiny world (default: generated in a temp dir)")
    parser.add_argument("--real-root", type=Path, default=Path(tempfile.gettempdir()) / "bench_realistic")
    parser.add_argument("--florence-step", choices=["none", "forward", "train"], default="none")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        tiny = dataset(world(args.tiny_root or Path(scratch) / "tiny", "tiny", []))
        real = dataset(world(args.real_root, "realistic", REAL_SUBSET))
        print(f"CPU threads {args.threads}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; batch "
              f"{args.batch}; tiny world {len(tiny)} scenes, realistic subset {len(real)} scenes", flush=True)
        large_step = None
        if args.florence_step != "none":
            large_step = step_rate("florence2-large", real, 1, 2, args.florence_step)
            print(f"florence2-large IL {args.florence_step} (batch 1, real cameras): {large_step:.3f} samples/s",
                  flush=True)
        processors = {"tiny-florence2": DipoleProcessor.from_config(build_config("tiny-florence2", LOCAL_TOKENIZER)),
                      "florence2-large": DipoleProcessor.from_config(build_config("florence2-large",
                                                                                  LOCAL_TOKENIZER))}
        print("| world (camera size) | processor (model input) | loader 0 workers scenes/s | "
              f"loader {args.workers} workers scenes/s | loader 0 workers cached scenes/s | tiny-florence2 IL step "
              f"samples/s | {args.workers}w / 0w | cached / 0w | {args.workers}w / tiny step | cached / tiny step | "
              f"{args.workers}w / florence2-large step |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, items in (("tiny (128x72)", tiny), ("realistic (1920x1080)", real)):
            for preset, processor in processors.items():
                size = "x".join(str(v) for v in processor.settings.image_size)
                # the step is timed right before the loaders of each row: on a shared machine the load drifts
                tiny_step = step_rate("tiny-florence2", tiny, args.batch, args.batches, "step")
                rates = {w: loader_rate(items, processor, w, args.batch, args.batches) for w in (0, args.workers)}
                cached = loader_rate(items, processor, 0, args.batch, args.batches, cached=True)
                large = f"{rates[args.workers] / large_step:.0f}" if large_step else "-"
                print(f"| {name} | {preset} ({size}) | {rates[0]:.1f} | {rates[args.workers]:.1f} | {cached:.1f} | "
                      f"{tiny_step:.1f} | {rates[args.workers] / rates[0]:.2f} | {cached / rates[0]:.1f} | "
                      f"{rates[args.workers] / tiny_step:.2f} | {cached / tiny_step:.1f} | {large} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
