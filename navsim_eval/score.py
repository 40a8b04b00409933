"""Command line: score trajectories of NAVSIM scenes with the native PDM scorer.

    python -m navsim_eval.score --logs DIR --maps-root DIR --trajectories FILE --metric v1|v2 --out FILE.csv
        [--workers N] [--cache-dir DIR] [--require-cache] [--map-version V] [--backend native|official]

Writes one CSV row per (token, trajectory) with the official column names plus `error`, and prints the mean of
every column and the failures. Exit status 0 when every row was scored, 1 when some failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from data_pipelines.errors import DataError
from navsim_eval.pdm.errors import ScoringError
from navsim_eval.scoring import ScoringConfig, ScoringService, load_trajectories, summarize, write_csv

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m navsim_eval.score", description=__doc__.split("\n")[0])
    parser.add_argument("--logs", required=True, help="folder searched recursively for OpenScene log pickles")
    parser.add_argument("--maps-root", required=True, help="nuPlan maps root (nuplan-maps-v1.0.json + locations)")
    parser.add_argument("--trajectories", required=True,
                        help="JSON/pickle {token: poses (8x3)} or {token: {name: poses}}, or a submission pickle")
    parser.add_argument("--metric", choices=("v1", "v2"), required=True, help="v1 = PDMS, v2 = EPDMS")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--cache-dir", default=None, help="reuse / store metric caches here (stale ones are rebuilt)")
    parser.add_argument("--require-cache", action="store_true",
                        help="only read metric caches: fail tokens whose cache is missing or stale (built from other "
                             "frames or another map file; checked when --logs hold the token)")
    parser.add_argument("--map-version", default=None, help="map index name (default nuplan-maps-v1.0)")
    parser.add_argument("--backend", choices=("native", "official"), default="native",
                        help="'official': score with the installed navsim devkit against its metric cache "
                             "(--cache-dir; not bundled)")
    return parser


def _load_official_devkit(version: str):
    """The devkit API, or exit with a message naming the missing package (the devkit is never bundled)."""
    from navsim_eval.official_backend import OfficialBackendUnavailable, load_devkit

    try:
        return load_devkit(version)
    except OfficialBackendUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None


def _score_official(args, trajectories, devkit) -> list[dict]:
    """Rows from the official devkit (navsim_eval.official_backend); `--cache-dir` = the devkit's metric cache."""
    from navsim_eval.official_backend import OfficialScorer

    if args.cache_dir is None:
        raise ScoringError("--backend official needs --cache-dir: a metric-cache folder written by the devkit")
    return OfficialScorer(args.cache_dir, args.metric, devkit).score_rows(trajectories)


def format_summary(summary: dict) -> str:
    lines = [f"rows: {summary['rows']}  scored: {summary['scored']}  failed: {summary['failed']}", "mean per column:"]
    width = max((len(k) for k in summary["means"]), default=0)
    for column, value in summary["means"].items():
        lines.append(f"  {column:<{width}}  {value:.6f}")
    if summary["failures"]:
        lines.append("failures (token, trajectory, reason):")
        for token, name, reason in summary["failures"]:
            lines.append(f"  {token}  {name}  {reason}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    devkit = _load_official_devkit(args.metric) if args.backend == "official" else None
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        trajectories = load_trajectories(args.trajectories)
        if args.backend == "official":
            rows = _score_official(args, trajectories, devkit)
            return _finish(rows, args)
        config = ScoringConfig(version=args.metric, maps_root=args.maps_root, num_workers=args.workers,
                               cache_dir=args.cache_dir, require_cache=args.require_cache,
                               **({"map_version": args.map_version} if args.map_version else {}))
        rows = ScoringService(args.logs, config).score(trajectories)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _finish(rows, args)


def _finish(rows: list[dict], args) -> int:
    write_csv(rows, args.out, args.metric)
    summary = summarize(rows, args.metric)
    print(format_summary(summary))
    print(f"wrote {args.out}")
    return EXIT_OK if summary["failed"] == 0 else EXIT_FAILURES


if __name__ == "__main__":
    sys.exit(main())
