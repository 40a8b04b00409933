"""NAVSIM leaderboard submissions: write (v1 navtest / v2 two-stage), merge seeds, validate.

    python launch/make_submission.py write --split navtest --checkpoint CKPT --omega 1.0 --seeds 0,1,2 \
        --method DIPOLE --repo-url https://... --authors "..." --email ... --institution ... --country ... --out DIR
    python launch/make_submission.py write ... --from-results outputs/evaluation/results.csv   # no re-inference
    python launch/make_submission.py merge seed0/submission.pkl seed1/submission.pkl --out merged/
    python launch/make_submission.py validate DIR/submission.pkl --split navtest [--format v1|v2]

The pickle loads where the official devkit runs (navsim Trajectory / nuplan TrajectorySampling classes,
NumPy 1.x) without needing the devkit to write it. `validate` exits non-zero on any error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from data_pipelines.errors import DataError
from data_pipelines.paths import DataPaths
from data_pipelines.scene import SensorConfig
from navsim_eval.evaluation import ConstantVelocityPlanner, EvaluationConfig, HumanPlanner, ModelPlanner, read_rows
from navsim_eval.evaluation.pipeline import build_sources, resolve_split
from navsim_eval.evaluation.predict import predict, predictions_from_results
from navsim_eval.submission import (
    SubmissionMetadata, build_v1_submission, build_v2_submission, merge_submission_files, validate_submission,
    write_submission,
)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default="synthetic_test", help="split name under <data-root>/splits or a YAML path")
    p.add_argument("--data-root", help="dataset root (default $OPENSCENE_DATA_ROOT)")
    p.add_argument("--maps-root")
    p.add_argument("--format", choices=("v1", "v2"), help="v1: navtest board; v2: two-stage boards")
    p.add_argument("--two-stage-root", help="two-stage data (default <data-root>/<split>_two_stage)")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="run a planner on the split and write submission.pkl")
    _data_args(w)
    w.add_argument("--planner", default="dipole", choices=("dipole", "constant_velocity", "human"))
    w.add_argument("--checkpoint", help="DipoleVLA.from_pretrained path or id (planner dipole)")
    w.add_argument("--dtype", default="auto",
                   help="model weights dtype: auto (as stored in the checkpoint), float32, bfloat16, float16")
    w.add_argument("--omega", type=float, default=1.0)
    w.add_argument("--num-steps", type=int)
    w.add_argument("--seeds", type=_ints, default=(0,), help="one prediction set per seed (v1)")
    w.add_argument("--batch-size", type=int, default=4)
    w.add_argument("--from-results", help="take the trajectories from an evaluation results.csv")
    w.add_argument("--method", required=True, help="method name (team_name = <a href=REPO>METHOD</a>)")
    w.add_argument("--repo-url", required=True, help="public code link (v1 board rule)")
    for name in ("authors", "email", "institution", "country"):
        w.add_argument(f"--{name}", required=True)
    w.add_argument("--out", required=True, help="output folder or .pkl path")
    m = sub.add_parser("merge", help="merge v1 submissions of several seeds")
    m.add_argument("files", nargs="+")
    m.add_argument("--out", required=True)
    v = sub.add_parser("validate", help="check a submission against a split")
    v.add_argument("file")
    _data_args(v)
    return p.parse_args(argv)


def _sources(args: argparse.Namespace, fmt: str):
    config = EvaluationConfig(split=args.split, data_root=args.data_root, maps_root=args.maps_root,
                              two_stage="on" if fmt == "v2" else "off", two_stage_root=args.two_stage_root,
                              baselines=())
    sensors = SensorConfig.front_three_current() if getattr(args, "command", "") == "write" else None
    sources = build_sources(config, sensors or SensorConfig.build_no_sensors())
    return sources[0], (sources[1] if len(sources) > 1 else None)


def _planner(args: argparse.Namespace):
    if args.planner == "constant_velocity":
        return ConstantVelocityPlanner()
    if args.planner == "human":
        return HumanPlanner()
    if not args.checkpoint:
        raise SystemExit("--checkpoint is required for the dipole planner")
    import torch

    from vla import DipoleVLA

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = DipoleVLA.from_pretrained(args.checkpoint, dtype=args.dtype).to(device).eval()
    return ModelPlanner(model, name="dipole", omegas=[args.omega], seeds=args.seeds, num_steps=args.num_steps)


def _predictions(args, source, planner_name: str, seed: int):
    if args.from_results:
        omega = args.omega if planner_name == "dipole" else None
        found = predictions_from_results(read_rows(args.from_results), planner_name, omega, seed, 0, source.stage)
        missing = sorted(set(source.tokens) - set(found))
        if missing:
            raise SystemExit(f"{args.from_results}: no {planner_name} trajectory (omega {omega}, seed {seed}, "
                             f"stage {source.stage}) for {len(missing)} token(s), e.g. {missing[:3]}")
        return {t: found[t] for t in source.tokens}
    return None


def write(args: argparse.Namespace) -> int:
    fmt = args.format or "v1"
    metadata = SubmissionMetadata.linked(args.method, args.repo_url, authors=args.authors, email=args.email,
                                         institution=args.institution, country_region=args.country)
    first, second = _sources(args, fmt)
    stages = [first] + ([second] if fmt == "v2" else [])
    per_stage: list[list[dict]] = []  # [stage][seed] -> {token: poses}
    planner = None if args.from_results else _planner(args)
    seeds = args.seeds if args.planner == "dipole" else (0,)
    for source in stages:
        if planner is None:
            per_stage.append([_predictions(args, source, args.planner, seed) for seed in seeds])
        else:
            by_variant = predict(source, planner, args.batch_size)
            per_stage.append([by_variant[v] for v in planner.variants()])
    if fmt == "v1":
        submission = build_v1_submission(per_stage[0], metadata)
    else:
        submission = build_v2_submission(per_stage[0][0], per_stage[1][0], metadata)
    path = write_submission(submission, args.out)
    print(f"wrote {path}")
    return 0


def _expected_tokens(args: argparse.Namespace, fmt: str) -> tuple[list[str], list[str] | None]:
    """Stage-1 (and for v2 stage-2) tokens of the split; the YAML's token list when the logs are not on disk."""
    try:
        first, second = _sources(args, fmt)
    except DataError:
        split = resolve_split(EvaluationConfig(split=args.split, data_root=args.data_root, baselines=()),
                              DataPaths.from_env(args.data_root, args.maps_root))
        if fmt == "v2" or not split.scene_filter.tokens:
            raise
        return list(split.scene_filter.tokens), None
    return first.tokens, (second.tokens if second is not None else None)


def validate(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:  # infer the format from the file
        fmt = validate_submission(args.file).format or "v1"
    first, second = _expected_tokens(args, fmt)
    report = validate_submission(args.file, first, second, args.format)
    print(report.to_text())
    return 0 if report.ok else 1


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.command == "write":
        return write(args)
    if args.command == "merge":
        print(f"wrote {merge_submission_files([Path(f) for f in args.files], args.out)}")
        return 0
    return validate(args)


if __name__ == "__main__":
    sys.exit(main())
