"""PDM scoring speed on the golden scenes versus the official pipeline (timing_v1.json / timing_v2.json).

Usage: python benchmarks/bench_pdm_score.py [--golden DIR] [--stride N] [--ks 1 8 32 128] [--repeats 3]

For v1 and v2: builds the metric cache of every `stride`-th golden scene (v1 timed with writing the cache file,
as the official figure) and scores K = 1, 8, 32, 128 candidates per scene (random perturbations of the golden
trajectories) with one `score_trajectories` call per scene. Prints trajectories/s, metric-cache seconds per
scene and the ratios to the official figures (v1: 23 ms per trajectory, 0.21 s per cache; v2: 70 ms, 0.35 s).
Times are CPU seconds of this process (the machine may be shared); each scene's scoring time is the minimum
over `repeats` runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from data_pipelines.maps import load_map  # noqa: E402
from data_pipelines.scene_filter import SceneFilter  # noqa: E402
from data_pipelines.scene_loader import SceneLoader  # noqa: E402
from navsim_eval.pdm.metric_cache import MetricCacheStore, build_metric_cache  # noqa: E402
from navsim_eval.pdm.scorer import score_trajectories  # noqa: E402

DEFAULT_GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "pdm"
POSITION_NOISE_M = 0.5  # std of the smooth perturbation added to golden poses
HEADING_NOISE_RAD = 0.03


def perturbed_candidates(golden: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """K candidates: golden trajectories (cycled) plus smooth random offsets growing with time."""
    base = golden[np.arange(num) % len(golden)]
    growth = np.linspace(0.125, 1.0, base.shape[1])[None, :, None]
    noise = rng.normal(size=(num, 1, 3)) * np.array([POSITION_NOISE_M, POSITION_NOISE_M, HEADING_NOISE_RAD])
    return base + growth * noise * 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN)
    parser.add_argument("--stride", type=int, default=5, help="use every n-th golden scene")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    scenes = json.loads((args.golden / "scenes.json").read_text())
    trajectories = json.loads((args.golden / "trajectories.json").read_text())
    tokens = [t for log in scenes["logs"].values() for t in log["tokens"]][:: args.stride]
    loader = SceneLoader(args.golden / "navsim_logs" / "synthetic_public", None,
                         SceneFilter(frame_interval=1, has_route=False))
    rng = np.random.default_rng(0)
    print(f"{len(tokens)} golden scenes; CPU time of this process")
    print(f"{'version':8}{'K':>6}{'traj/s':>12}{'ms/scene':>12}{'x official':>12}")
    summary = []
    for version in ("v1", "v2"):
        official = json.loads((args.golden / f"timing_{version}.json").read_text())
        official_traj_per_s = 1.0 / official["score_seconds_per_trajectory_median"]
        official_cache_s = official["metric_cache_seconds_median"]
        caches, cache_seconds = [], []
        with tempfile.TemporaryDirectory() as tmp:
            store = MetricCacheStore(tmp)
            for token in tokens:
                scene = loader.get_scene_from_token(token)
                map_api = load_map(args.golden / "maps", scene.scene_metadata.map_name)
                start = time.process_time()
                cache = build_metric_cache(scene, map_api, version)
                if version == "v1":  # the official v1 figure includes writing the cache
                    store.save(cache)
                cache_seconds.append(time.process_time() - start)
                caches.append(cache)
        cache_median = float(np.median(cache_seconds))
        for num in args.ks:
            inputs = [perturbed_candidates(np.array(list(trajectories[c.token].values())), num, rng) for c in caches]
            score_trajectories(caches[0], inputs[0], version)  # warm-up
            total = 0.0
            for cache, poses in zip(caches, inputs):
                best = np.inf
                for _ in range(args.repeats):
                    start = time.process_time()
                    score_trajectories(cache, poses, version)
                    best = min(best, time.process_time() - start)
                total += best
            per_s = num * len(caches) / total
            print(f"{version:8}{num:>6}{per_s:>12.0f}{1e3 * total / len(caches):>12.2f}"
                  f"{per_s / official_traj_per_s:>11.1f}x")
            summary.append((version, num, per_s / official_traj_per_s))
        print(f"{version:8} metric cache {cache_median:.3f} s/scene (official {official_cache_s:.2f} s): "
              f"{official_cache_s / cache_median:.1f}x")
    for version, num, ratio in summary:
        if num == 32:
            print(f"target >= 50x at K=32: {version} {ratio:.1f}x {'OK' if ratio >= 50 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
