"""PDM scoring and metric-cache speed versus the official pipeline, with a same-run baseline.

Usage:
    python benchmarks/bench_pdm_score.py [--data-root DIR ...] [--split NAME ...] [--stride N ...] [--max-scenes N]
        [--ks 1 8 32 128] [--workers 1 2] [--worker-k 32] [--repeats 2] [--baseline GIT_REF] [--rounds 2]

For every data root (default: the golden fixtures; any OpenScene-layout root with `maps/` and
`navsim_logs/<split>/` works, e.g. a generated synthetic city) and for v1 and v2 it measures, on every
`stride`-th scene window (4 history + 10 future frames):
* metric-cache build seconds (CPU; per scene the minimum over `repeats` builds, median over the scenes; v1
  includes writing the cache file, as the official figure);
* in-process scoring throughput for K candidates per scene (one `score_trajectories` call per scene, CPU
  time, per scene the minimum over `repeats` calls), and with `score_trajectories_batch` over `batch-scenes`
  scenes per call (one shared tracker simulation);
* wall-clock throughput of the training reward (`PDMReward`) with 1, 2, ... worker processes at K = `worker-k`.
Candidates are the data root's `trajectories.json` (golden) or the logged future, cycled and perturbed.
Official figures come from the golden `timing_v1.json` / `timing_v2.json` (v1: 23 ms per trajectory, 0.21 s per
cache; v2: 70 ms, 0.35 s, idle 2-vCPU machine). With `--baseline REF` the same measurement runs on the packages
of git revision REF, interleaved with the working tree round by round (`same_run_baseline.py`); the table gives
min-max ranges over the rounds and the per-round ratio working tree / baseline. With several data roots the
first is the reference for the cost-growth rows.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from same_run_baseline import MEASURE_FLAG, interleaved_rounds, load_average  # noqa: E402

DEFAULT_GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "pdm"
VERSIONS = ("v1", "v2")
POSITION_NOISE_M = 0.5  # std of the smooth perturbation added to the candidate poses
HEADING_NOISE_RAD = 0.03
TARGET_SCORE_RATIO = 100.0  # x official trajectories/s at K = 32
TARGET_CACHE_RATIO = 10.0  # x official metric-cache build
TARGET_K = 32
DEFAULT_STRIDE = 5  # every 5th golden window: 28 scenes, all four layouts


def perturbed_candidates(base_poses: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """K candidates: the base trajectories (n, 8, 3) cycled, plus smooth random offsets growing with time."""
    base = base_poses[np.arange(num) % len(base_poses)]
    growth = np.linspace(0.125, 1.0, base.shape[1])[None, :, None]
    noise = rng.normal(size=(num, 1, 3)) * np.array([POSITION_NOISE_M, POSITION_NOISE_M, HEADING_NOISE_RAD])
    return base + growth * noise * 4.0


# ------------------------------------------------------------------------------------------------ measurement


def _logs_folder(data_root: Path, split: Optional[str]) -> Path:
    logs = data_root / "navsim_logs"
    if split:
        return logs / split
    folders = sorted(p for p in logs.iterdir() if p.is_dir()) if logs.is_dir() else []
    if len(folders) != 1:
        raise SystemExit(f"{logs}: pass --split (found {[p.name for p in folders]})")
    return folders[0]


def time_metric_caches(scenes, maps: dict, version: str, repeats: int = 1) -> tuple[dict, list[float]]:
    """({token: cache}, CPU seconds per cache): every scene's metric cache built `repeats` times, per scene the
    minimum (v1 timed with writing the cache file, as the official figure). The first build per map, which loads
    its layers, is not timed."""
    from navsim_eval.pdm.metric_cache import MetricCacheStore, build_metric_cache

    warmed = set()
    for scene in scenes:
        if maps[scene.token].location not in warmed:
            build_metric_cache(scene, maps[scene.token], version)
            warmed.add(maps[scene.token].location)
    caches, seconds = {}, []
    with tempfile.TemporaryDirectory() as directory:
        store = MetricCacheStore(directory)
        for scene in scenes:
            best = float("inf")
            for _ in range(max(repeats, 1)):
                start = time.process_time()
                cache = build_metric_cache(scene, maps[scene.token], version)
                if version == "v1":
                    store.save(cache)
                best = min(best, time.process_time() - start)
            seconds.append(best)
            caches[scene.token] = cache
    return caches, seconds


def load_scenes(data_root: Path, split: Optional[str], stride: int, max_scenes: int):
    """(scenes, {token: map}) of every `stride`-th 4 + 10 frame window of the data root, at most `max_scenes`."""
    from data_pipelines.maps import load_map
    from data_pipelines.scene_filter import SceneFilter
    from data_pipelines.scene_loader import SceneLoader

    scene_filter = SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1, has_route=False)
    loader = SceneLoader(_logs_folder(data_root, split), None, scene_filter)
    scenes = [loader.get_scene_from_token(t) for t in list(loader.tokens)[::stride][:max_scenes]]
    return scenes, {s.token: load_map(data_root / "maps", s.scene_metadata.map_name) for s in scenes}


def scene_base_poses(data_root: Path, scenes) -> dict[str, np.ndarray]:
    """{token: (n, 8, 3)} trajectories the candidates perturb: the data root's named ones (`trajectories.json`,
    the golden fixtures') where it lists the scene, else the scene's logged future."""
    trajectories_file = data_root / "trajectories.json"
    named = json.loads(trajectories_file.read_text()) if trajectories_file.is_file() else {}
    return {s.token: (np.array(list(named[s.token].values())) if s.token in named
                      else s.get_future_trajectory(8).poses[None].astype(np.float64)) for s in scenes}


def measure(args) -> dict:
    """All figures of one data root for the packages on the import path (run in a fresh process)."""
    from data_pipelines.maps import MapLayer
    from navsim_eval.pdm.scorer import score_trajectories
    from navsim_eval.reward import PDMReward

    try:
        from navsim_eval.pdm.scorer import score_trajectories_batch as batch_scoring
    except ImportError:  # a baseline revision without multi-scene scoring
        batch_scoring = None

    data_root = args.data_root[0]
    scenes, maps = load_scenes(data_root, (args.split or [None])[0], args.stride[0], args.max_scenes)
    tokens = [s.token for s in scenes]
    base_poses = scene_base_poses(data_root, scenes)
    locations = {m.location: m for m in maps.values()}
    lanes = {loc: len(m.get_ids(MapLayer.LANE)) + len(m.get_ids(MapLayer.LANE_CONNECTOR)) for loc, m in locations.items()}
    import navsim_eval

    figures: dict = {"package": str(Path(navsim_eval.__file__).parent), "data_root": str(data_root),
                     "scenes": len(scenes), "lanes_per_map": lanes,
                     "load_before": load_average(), "versions": {}}
    rng = np.random.default_rng(0)
    for version in VERSIONS:
        caches, cache_seconds = time_metric_caches(scenes, maps, version, args.repeats)
        result = {"cache_seconds_median": float(np.median(cache_seconds)), "score_per_s": {}, "workers_per_s": {}}
        for num in args.ks:
            inputs = {t: perturbed_candidates(base_poses[t], num, rng) for t in caches}
            score_trajectories(caches[tokens[0]], inputs[tokens[0]], version)  # warm-up
            total = 0.0
            for token, cache in caches.items():
                best = np.inf
                for _ in range(args.repeats):
                    start = time.process_time()
                    score_trajectories(cache, inputs[token], version)
                    best = min(best, time.process_time() - start)
                total += best
            result["score_per_s"][str(num)] = num * len(caches) / total
        if batch_scoring is not None:  # several scenes per call: one shared tracker simulation
            inputs = {t: perturbed_candidates(base_poses[t], args.batch_k, rng) for t in caches}
            chunks = [tokens[i:i + args.batch_scenes] for i in range(0, len(tokens), args.batch_scenes)]
            total = 0.0
            for chunk in chunks:
                best = np.inf
                for _ in range(args.repeats):
                    start = time.process_time()
                    batch_scoring([caches[t] for t in chunk], [inputs[t] for t in chunk], version)
                    best = min(best, time.process_time() - start)
                total += best
            result["batched_per_s"] = args.batch_k * len(caches) / total
        poses = np.stack([perturbed_candidates(base_poses[t], args.worker_k, rng) for t in tokens])
        for workers in args.workers:
            reward = PDMReward(caches.__getitem__, version, num_workers=workers)
            try:
                reward(tokens[: 2 * workers], poses[: 2 * workers])  # starts the pool, ships the caches
                best = np.inf
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    reward(tokens, poses)
                    best = min(best, time.perf_counter() - start)
            finally:
                reward.close()
            result["workers_per_s"][str(workers)] = len(tokens) * args.worker_k / best
        figures["versions"][version] = result
    figures["load_after"] = load_average()
    return figures


# ------------------------------------------------------------------------------------------------- reporting


def _official(golden: Path) -> dict:
    out = {}
    for version in VERSIONS:
        timing = json.loads((golden / f"timing_{version}.json").read_text())
        out[version] = {"per_s": 1.0 / timing["score_seconds_per_trajectory_median"],
                        "cache_s": timing["metric_cache_seconds_median"]}
    return out


def _span(values, fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if np.isclose(low, high, rtol=0.005) else f"{format(low, fmt)}-{format(high, fmt)}"


def _pick(rounds: list[dict], version: str, *keys: str) -> list[float]:
    """One figure per round (rounds without it, e.g. a baseline lacking the feature, are left out)."""
    values = []
    for figures in rounds:
        value = figures["versions"][version]
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(float(value))
    return values


def report(data_root: Path, current: list[dict], baseline: list[dict], official: dict, args) -> dict:
    """Print one data root's table; return {version: (traj/s at K = 32 per round, cache s per round)}."""
    first = current[0]
    print(f"\n## {data_root}: {first['scenes']} scenes; lanes + lane connectors per map: {first['lanes_per_map']}")
    print(f"   {len(current)} round(s); {first['load_before']} (start) / {current[-1]['load_after']} (end)")
    print(f"   packages measured: {first['package']}" + (f" vs baseline {baseline[0]['package']}" if baseline else ""))
    header = f"{'version':8}{'row':>14}{'ours':>16}{'x official':>16}"
    if baseline:
        header += f"{'baseline':>16}{'x baseline':>16}"
    print(header)
    targets = {}
    for version in VERSIONS:
        rows = [(f"K={k} traj/s", ("score_per_s", str(k)), "per_s") for k in args.ks]
        rows.append((f"K={args.batch_k} x{args.batch_scenes}", ("batched_per_s",), "per_s"))
        rows.append(("cache s", ("cache_seconds_median",), "cache_s"))
        rows += [(f"{n} worker(s)", ("workers_per_s", str(n)), "per_s") for n in args.workers]
        for label, keys, official_key in rows:
            ours = _pick(current, version, *keys)
            if not ours:
                continue
            is_time = official_key == "cache_s"
            vs_official = [official[version][official_key] / v if is_time else v / official[version][official_key]
                           for v in ours]
            fmt = ".4f" if is_time else ".0f"
            line = f"{version:8}{label:>14}{_span(ours, fmt):>16}{_span(vs_official, '.1f') + 'x':>16}"
            base = _pick(baseline, version, *keys)
            if base:
                paired = [b / o if is_time else o / b for o, b in zip(ours, base)]
                line += f"{_span(base, fmt):>16}{_span(paired, '.2f') + 'x':>16}"
            elif baseline:
                line += f"{'n/a':>16}{'n/a':>16}"
            print(line)
        k32 = _pick(current, version, "score_per_s", str(TARGET_K)) if TARGET_K in args.ks else []
        cache = _pick(current, version, "cache_seconds_median")
        targets[version] = (k32, cache)
        if k32:
            ratio = [v / official[version]["per_s"] for v in k32]
            print(f"{version:8}target K={TARGET_K} >= {TARGET_SCORE_RATIO:.0f}x official: {_span(ratio, '.1f')}x "
                  f"{'OK' if min(ratio) >= TARGET_SCORE_RATIO else 'below in some round' if max(ratio) >= TARGET_SCORE_RATIO else 'BELOW'}")
        cache_ratio = [official[version]["cache_s"] / c for c in cache]
        print(f"{version:8}target cache >= {TARGET_CACHE_RATIO:.0f}x official: {_span(cache_ratio, '.1f')}x "
              f"{'OK' if min(cache_ratio) >= TARGET_CACHE_RATIO else 'below in some round' if max(cache_ratio) >= TARGET_CACHE_RATIO else 'BELOW'}")
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, action="append", help="repeatable; default: the golden fixtures")
    parser.add_argument("--split", action="append", default=None,
                        help="navsim_logs sub-folder per data root, in --data-root order (needed when there are several)")
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN, help="holds the official timing_v*.json")
    parser.add_argument("--stride", type=int, action="append", default=None,
                        help="use every n-th scene window; per data root in --data-root order (default 5; the "
                             "last value holds for the remaining roots)")
    parser.add_argument("--max-scenes", type=int, default=40)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--worker-k", type=int, default=TARGET_K)
    parser.add_argument("--batch-k", type=int, default=TARGET_K, help="K of the multi-scene scoring row")
    parser.add_argument("--batch-scenes", type=int, default=8, help="scenes per score_trajectories_batch call")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", default=None, help="git revision measured in the same run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(MEASURE_FLAG, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data_root = args.data_root or [args.golden]
    args.stride = args.stride or [DEFAULT_STRIDE]

    if args.measure_json is not None:
        args.measure_json.write_text(json.dumps(measure(args)))
        return

    official = _official(args.golden)
    print(f"PDM scorer benchmark; official: v1 {1e3 / official['v1']['per_s']:.1f} ms/traj, "
          f"{official['v1']['cache_s']:.3f} s/cache; v2 {1e3 / official['v2']['per_s']:.1f} ms/traj, "
          f"{official['v2']['cache_s']:.3f} s/cache. Scoring figures are CPU time of one process; worker rows "
          f"are wall-clock through PDMReward at K={args.worker_k}.")
    script = Path(__file__).resolve()
    per_root = []
    splits = args.split or []
    for index, data_root in enumerate(args.data_root):
        stride = args.stride[min(index, len(args.stride) - 1)]
        split = splits[index] if index < len(splits) else None
        arguments = _forwarded(args, data_root, split, stride)
        current, baseline = interleaved_rounds(script, arguments, args.baseline, args.rounds)
        label = f"{data_root} ({split})" if split else str(data_root)  # one root can be given with two splits
        per_root.append((label, report(data_root, current, baseline, official, args)))
    if len(per_root) > 1:
        reference_root, reference = per_root[0]
        print(f"\n## cost growth over {reference_root} (per trajectory at K={TARGET_K}; per metric cache)")
        for data_root, targets in per_root[1:]:
            for version in VERSIONS:
                growth_traj = [np.median(reference[version][0]) / v for v in targets[version][0]]
                growth_cache = [c / np.median(reference[version][1]) for c in targets[version][1]]
                print(f"{version:8}{data_root:>52}  per trajectory {_span(growth_traj, '.2f')}x, "
                      f"per cache {_span(growth_cache, '.2f')}x (target <= 1.5x)")


def _forwarded(args, data_root: Path, split: Optional[str], stride: int) -> list[str]:
    """Arguments of one measurement process."""
    out = ["--data-root", str(data_root), "--golden", str(args.golden), "--stride", str(stride),
           "--max-scenes", str(args.max_scenes), "--worker-k", str(args.worker_k), "--repeats", str(args.repeats),
           "--batch-k", str(args.batch_k), "--batch-scenes", str(args.batch_scenes),
           "--ks", *map(str, args.ks), "--workers", *map(str, args.workers)]
    if split:
        out += ["--split", split]
    return out


if __name__ == "__main__":
    main()
