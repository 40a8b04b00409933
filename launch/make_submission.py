"""NAVSIM leaderboard submissions: write (v1 navtest / v2 two-stage), merge seeds, validate.

    python launch/make_submission.py write --split navtest --checkpoint CKPT --omega 1.0 --seeds 0,1,2 \
        --method DIPOLE --repo-url https://... --authors "..." --email ... --institution ... --country ... --out DIR
    python launch/make_submission.py write ... --from-results outputs/evaluation/results.csv   # no re-inference
    python launch/make_submission.py merge seed0/submission.pkl seed1/submission.pkl --out merged/
    python launch/make_submission.py validate DIR/submission.pkl --split navtest [--format v1|v2]
    python launch/make_submission.py write --help      # every key of a command with type, default and help

Every command reads its keys in the project's config grammar (``key=value``, or ``--key value``).
The pickle loads where the official devkit runs (navsim Trajectory / nuplan TrajectorySampling classes,
NumPy 1.x) without needing the devkit to write it. `validate` exits non-zero on any error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Union

from data_pipelines.configuration import first_doc_line, parse_command_line, run_entry_point
from data_pipelines.errors import DataError
from data_pipelines.paths import DataPaths
from data_pipelines.scene import SensorConfig
from navsim_eval.evaluation import EvaluationConfig, ModelPlanner, read_rows
from navsim_eval.evaluation.pipeline import build_sources, resolve_split
from navsim_eval.evaluation.planners import MODEL_FREE_PLANNERS
from navsim_eval.evaluation.predict import predict, predictions_from_results
from navsim_eval.submission import (
    SubmissionMetadata, build_v1_submission, build_v2_submission, merge_submission_files, validate_submission,
    write_submission,
)
from navsim_eval.submission.config import MergeConfig, SplitConfig, ValidateConfig, WriteConfig

COMMANDS = {"write": (WriteConfig, None), "merge": (MergeConfig, "files"), "validate": (ValidateConfig, "file")}
AnyConfig = Union[WriteConfig, MergeConfig, ValidateConfig]


def parse_args(argv=None) -> AnyConfig:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        commands = "\n".join(f"  {name:<9} {first_doc_line(cls)}" for name, (cls, _) in COMMANDS.items())
        print(f"usage: launch/make_submission.py {{{','.join(COMMANDS)}}} ...\n\n{__doc__}\ncommands:\n{commands}")
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    cls, positional = COMMANDS[argv[0]]
    config, _ = parse_command_line(cls, argv[1:], prog=f"launch/make_submission.py {argv[0]}",
                                   description=first_doc_line(cls), positional=positional)
    return config


def _sources(args: SplitConfig, fmt: str):
    config = EvaluationConfig(split=args.split, data_root=args.data_root, maps_root=args.maps_root,
                              two_stage="on" if fmt == "v2" else "off", two_stage_root=args.two_stage_root,
                              baselines=())
    sensors = SensorConfig.front_three_current() if isinstance(args, WriteConfig) else None
    sources = build_sources(config, sensors or SensorConfig.build_no_sensors())
    return sources[0], (sources[1] if len(sources) > 1 else None)


def _planner(args: WriteConfig):
    if args.planner in MODEL_FREE_PLANNERS:
        return MODEL_FREE_PLANNERS[args.planner]()
    if not args.checkpoint:
        raise SystemExit("checkpoint is required for the dipole planner")
    import torch

    from vla import DipoleVLA
    from vla.sampling import PolicySampler

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = DipoleVLA.from_pretrained(args.checkpoint, dtype=args.dtype).to(device).eval()
    return ModelPlanner(PolicySampler(model), name="dipole", omegas=[args.omega], seeds=args.seeds,
                        num_steps=args.num_steps)


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


def write(args: WriteConfig) -> int:
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


def _expected_tokens(args: SplitConfig, fmt: str) -> tuple[list[str], list[str] | None]:
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


def validate(args: ValidateConfig) -> int:
    fmt = args.format
    if fmt is None:  # infer the format from the file
        fmt = validate_submission(args.file).format or "v1"
    first, second = _expected_tokens(args, fmt)
    report = validate_submission(args.file, first, second, args.format)
    print(report.to_text())
    return 0 if report.ok else 1


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    if isinstance(config, WriteConfig):
        return write(config)
    if isinstance(config, MergeConfig):
        print(f"wrote {merge_submission_files([Path(f) for f in config.files], config.out)}")
        return 0
    return validate(config)


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
