"""Metric-cache build speed on every scene window versus the official pipeline's timing, with a same-run baseline.

Usage: python benchmarks/metric_cache_speed.py [--data-root DIR] [--split NAME] [--stride N] [--max-scenes N]
    [--baseline GIT_REF] [--rounds 2]
Prints CPU milliseconds per metric cache (median) per version and the speed-up over the official median from the
golden `timing_v1.json` / `timing_v2.json` (v1 timed with writing the cache file, as the official figure). With
`--baseline REF` the revision's packages are measured in the same run, interleaved round by round
(`same_run_baseline.py`). Scene selection and timing are those of `bench_pdm_score.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pdm_score import DEFAULT_GOLDEN, VERSIONS, load_scenes, time_metric_caches  # noqa: E402
from same_run_baseline import MEASURE_FLAG, interleaved_rounds, load_average  # noqa: E402


def _span(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)}-{format(max(values), fmt)}" if len(values) > 1 else format(values[0], fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_GOLDEN)
    parser.add_argument("--split", default=None)
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN, help="holds the official timing_v*.json")
    parser.add_argument("--stride", type=int, default=1, help="use every n-th scene window")
    parser.add_argument("--max-scenes", type=int, default=1000)
    parser.add_argument("--baseline", default=None, help="git revision measured in the same run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(MEASURE_FLAG, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_json is not None:
        scenes, maps = load_scenes(args.data_root, args.split, args.stride, args.max_scenes)
        figures = {version: float(np.median(time_metric_caches(scenes, maps, version)[1])) for version in VERSIONS}
        args.measure_json.write_text(json.dumps({**figures, "scenes": len(scenes)}))
        return
    arguments = ["--data-root", str(args.data_root), "--golden", str(args.golden), "--stride", str(args.stride),
                 "--max-scenes", str(args.max_scenes)] + (["--split", args.split] if args.split else [])
    print(load_average())
    current, baseline = interleaved_rounds(Path(__file__).resolve(), arguments, args.baseline, args.rounds)
    print(f"{current[0]['scenes']} scenes of {args.data_root}; {len(current)} round(s); {load_average()}")
    for version in VERSIONS:
        official = json.loads((args.golden / f"timing_{version}.json").read_text())["metric_cache_seconds_median"]
        ours = [r[version] for r in current]
        line = (f"{version}: {_span([1e3 * v for v in ours], '.1f')} ms per metric cache (median, CPU time); "
                f"official {official * 1e3:.0f} ms -> {_span([official / v for v in ours], '.1f')}x faster")
        if baseline:
            base = [r[version] for r in baseline]
            line += (f"; baseline {args.baseline} {_span([1e3 * v for v in base], '.1f')} ms -> "
                     f"{_span([b / o for o, b in zip(ours, base)], '.2f')}x")
        print(line)


if __name__ == "__main__":
    main()
