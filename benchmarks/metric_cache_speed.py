"""Metric-cache build speed on the golden scenes versus the official pipeline's timing.

Usage: python benchmarks/metric_cache_speed.py [--golden DIR] [--stride N]
Prints CPU milliseconds per metric cache (median) per version and the speed-up over the official median from
`timing_v1.json` / `timing_v2.json` (the official v1 figure includes writing the cache file, so v1 is timed
with `MetricCacheStore.save` included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from data_pipelines.maps import load_map
from data_pipelines.scene_filter import SceneFilter
from data_pipelines.scene_loader import SceneLoader
from navsim_eval.pdm.metric_cache import MetricCacheStore, build_metric_cache

DEFAULT_GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "pdm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN)
    parser.add_argument("--stride", type=int, default=1, help="use every n-th golden scene")
    args = parser.parse_args()
    scene_filter = SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1, has_route=False)
    loader = SceneLoader(args.golden / "navsim_logs" / "synthetic_public", None, scene_filter)
    tokens = [t for log in json.loads((args.golden / "scenes.json").read_text())["logs"].values()
              for t in log["tokens"]][:: args.stride]
    scenes = [loader.get_scene_from_token(t) for t in tokens]
    maps = {s.token: load_map(args.golden / "maps", s.scene_metadata.map_name) for s in scenes}
    with tempfile.TemporaryDirectory() as directory:
        store = MetricCacheStore(directory)
        for version in ("v1", "v2"):
            seconds = []
            for scene in scenes:
                start = time.process_time()
                cache = build_metric_cache(scene, maps[scene.token], version)
                if version == "v1":
                    store.save(cache)
                seconds.append(time.process_time() - start)
            official = json.loads((args.golden / f"timing_{version}.json").read_text())["metric_cache_seconds_median"]
            median = float(np.median(seconds))
            print(f"{version}: {median * 1e3:.1f} ms per metric cache (median of {len(seconds)}, CPU time); "
                  f"official {official * 1e3:.0f} ms -> {official / median:.1f}x faster")


if __name__ == "__main__":
    main()
