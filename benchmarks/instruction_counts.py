"""Cost growth from the small maps to a city-size map in executed instructions: a figure that machine load does
not move, beside the seconds of `bench_pdm_score.py`.

Usage:
    python benchmarks/instruction_counts.py [--data-root DIR ... --split NAME ... --stride N ...] [--max-scenes N]
        [--k 32]

For every data root (default: the golden fixtures; the first is the reference) and for v1 and v2, a fresh Python
process runs under valgrind's callgrind with instrumentation off, builds every scene's metric cache and scores
K candidates once (warm-up: map layers, compiled kernels), then counts the instructions of one more pass of
metric-cache builds (v1 with writing the cache file, as the timed benchmark) and of `score_trajectories` of the
K candidates. Prints instructions per cache and per trajectory, and each root over the reference. Instruction
counts leave out memory stalls, so they bound the growth that seconds show on an idle machine from below; they
are repeatable to about 0.1 % (hash seed fixed). Needs `valgrind` (Debian package) on the PATH; about 2 min per
root and version on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pdm_score import (DEFAULT_GOLDEN, TARGET_K, VERSIONS, load_scenes, perturbed_candidates,  # noqa: E402
                             scene_base_poses)

CHILD_FLAG = "--count-in-child"
GROWTH_TARGET = 1.5  # issue target: city cost <= 1.5x the small maps'


def _callgrind_control(*arguments: str) -> None:
    subprocess.run(["callgrind_control", *arguments, str(os.getpid())], check=True, capture_output=True)


def count_in_child(data_root: Path, split: str, stride: int, max_scenes: int, version: str, k: int) -> None:
    """Run under callgrind: warm up, then count one pass of cache builds (dumped as part 1) and one of scoring
    (the part dumped at exit)."""
    from navsim_eval.pdm.metric_cache import MetricCacheStore, build_metric_cache
    from navsim_eval.pdm.scorer import score_trajectories

    scenes, maps = load_scenes(data_root, split, stride, max_scenes)
    rng = np.random.default_rng(0)
    base_poses = scene_base_poses(data_root, scenes)  # the timed benchmark's candidates
    candidates = {s.token: perturbed_candidates(base_poses[s.token], k, rng) for s in scenes}
    caches = {s.token: build_metric_cache(s, maps[s.token], version) for s in scenes}
    for scene in scenes:
        score_trajectories(caches[scene.token], candidates[scene.token], version)
    with tempfile.TemporaryDirectory() as directory:
        store = MetricCacheStore(directory)
        if version == "v1":  # the writer's first calls too
            for scene in scenes:
                store.save(caches[scene.token])
        _callgrind_control("-i", "on")
        for scene in scenes:
            cache = build_metric_cache(scene, maps[scene.token], version)
            if version == "v1":
                store.save(cache)
        _callgrind_control("-d")  # part 1: the caches; counters start again from zero
        for scene in scenes:
            score_trajectories(caches[scene.token], candidates[scene.token], version)
        _callgrind_control("-i", "off")
    print(f"scenes {len(scenes)}")


def measure(data_root: Path, split: str, stride: int, max_scenes: int, version: str, k: int) -> dict:
    """{"cache": instructions per metric cache, "trajectory": per scored trajectory}, counted in a child process
    under callgrind."""
    with tempfile.TemporaryDirectory() as directory:
        out_file = Path(directory) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
                   sys.executable, __file__, CHILD_FLAG, str(data_root), split, str(stride), str(max_scenes), version,
                   str(k)]
        env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command[-7:])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        scenes = int(re.search(r"^scenes (\d+)$", proc.stdout, re.M).group(1))
        parts = {}
        for path in Path(directory).glob("callgrind.out*"):
            text = path.read_text()
            parts[int(re.search(r"^part: (\d+)", text, re.M).group(1))] = int(re.search(r"^totals: (\d+)", text, re.M).group(1))
        if sorted(parts) != [1, 2]:
            raise RuntimeError(f"expected two callgrind parts, found {sorted(parts)} in {directory}")
        return {"cache": parts[1] / scenes, "trajectory": parts[2] / (scenes * k)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        root, split, stride, max_scenes, version, k = sys.argv[2:8]
        count_in_child(Path(root), split, int(stride), int(max_scenes), version, int(k))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, action="append", help="repeatable; default: the golden fixtures")
    parser.add_argument("--split", action="append", default=None, help="per data root (repeat in the same order)")
    parser.add_argument("--stride", type=int, action="append", default=None, help="per data root")
    parser.add_argument("--max-scenes", type=int, default=28)
    parser.add_argument("--k", type=int, default=TARGET_K, help="candidates per scene of the scoring row")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind (with callgrind_control) is not on the PATH: install the valgrind package")
    roots = args.data_root or [DEFAULT_GOLDEN]
    splits = args.split or ["synthetic_public"] * len(roots)
    strides = args.stride or [5] * len(roots)
    if not len(roots) == len(splits) == len(strides):
        raise SystemExit("give --split and --stride once per --data-root")
    figures = {}
    for root, split, stride in zip(roots, splits, strides):
        for version in VERSIONS:
            counts = measure(root, split, stride, args.max_scenes, version, args.k)
            for kind, value in counts.items():
                figures[root, split, version, kind] = value
            print(f"{root} ({split}) {version}: {counts['cache'] / 1e6:.2f} M instructions per metric cache, "
                  f"{counts['trajectory'] / 1e6:.3f} M per trajectory (K = {args.k})", flush=True)
    reference = (roots[0], splits[0])
    print(f"\n## instructions over {reference[0]} ({reference[1]}); target <= {GROWTH_TARGET}x")
    for root, split in list(dict.fromkeys((r, s) for r, s in zip(roots, splits)))[1:]:
        for version in VERSIONS:
            growth = {kind: figures[root, split, version, kind] / figures[(*reference, version, kind)]
                      for kind in ("cache", "trajectory")}
            print(f"{version}  {root} ({split})  per trajectory {growth['trajectory']:.2f}x, "
                  f"per cache {growth['cache']:.2f}x")


if __name__ == "__main__":
    main()
