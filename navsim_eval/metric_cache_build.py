"""Build the PDM metric caches of a whole split up front, sharded by log over processes and nodes.

    python -m navsim_eval.metric_cache_build split=SPLIT.yaml cache_dir=DIR [metrics=[v1,v2]] [data_root=DIR]
        [maps_root=DIR] [shard=i/n] [overwrite=true] [coverage_only=true] [--config PRESET.yaml] [--help]
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m navsim_eval.metric_cache_build ...

Caches go to ``<cache_dir>/<version>`` (the layout ``python -m navsim_eval.score --cache-dir`` and the evaluation's
``--metric-cache-dir`` read). Each process reads only the logs of its shard (logs i, i+n, ... of the split in
name order; ``shard`` defaults to accelerate's process index / count, or the launcher's RANK / WORLD_SIZE, 0/1
without a launcher); an entry that is up to date (same source fingerprint) is kept, others are built. Failures
are listed per token and the rest is built. The command prints, per version, what it built and the coverage
of its shard; ``coverage_only=true`` builds nothing and reports the coverage of the whole split (tokens with a
stored cache). Exit status 0 when every token of the shard (or split) has a cache, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, Sequence

from data_pipelines.configuration import REQUIRED, ConfigError, parse_command_line
from data_pipelines.errors import DataError, SplitError
from data_pipelines.paths import DataPaths
from data_pipelines.scene_loader import SceneLoader
from navsim_eval.evaluation.errors import EvaluationError
from navsim_eval.evaluation.pipeline import resolve_split
from navsim_eval.pdm.constants import check_version
from navsim_eval.pdm.metric_cache import CacheBuildReport, MetricCacheProvider, MetricCacheStore, build_caches

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2
MAX_LISTED = 20  # tokens listed per kind of problem in the printed report
RANK_VARIABLE, WORLD_SIZE_VARIABLE = "RANK", "WORLD_SIZE"  # set by torchrun (and so by accelerate launch)


@dataclass
class MetricCacheBuildConfig:
    """What one build (or coverage check) of a split's metric caches needs."""

    split: Annotated[str, REQUIRED] = ""  # split name under <data_root>/splits, or a split YAML path
    cache_dir: Annotated[str, REQUIRED] = ""  # caches are stored in <cache_dir>/<version>
    metrics: tuple[str, ...] = ("v1",)  # metric versions: v1 (PDMS) and/or v2 (EPDMS)
    data_root: Optional[str] = None  # dataset root; None: $OPENSCENE_DATA_ROOT
    maps_root: Optional[str] = None  # map root; None: $NUPLAN_MAPS_ROOT, else <data_root>/maps
    map_version: Optional[str] = None  # map index name; None: nuplan-maps-v1.0
    shard: Optional[str] = None  # i/n: this process builds logs i, i+n, ...; None: from the launcher (accelerate)
    overwrite: bool = False  # rebuild entries that are up to date too
    coverage_only: bool = False  # build nothing; report the coverage of the whole split


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """'i/n' with 0 <= i < n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"shard: expected 'i/n' (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard: expected 0 <= i < n, got {text!r}")
    return Shard(index, count)


def process_shard() -> Shard:
    """This process's shard over all processes of all nodes: accelerate's process index / count, or the
    launcher's RANK / WORLD_SIZE where accelerate runs undistributed (a CPU-only torchrun launch); 0/1 alone."""
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes > 1:
        return Shard(state.process_index, state.num_processes)
    world_size = int(os.environ.get(WORLD_SIZE_VARIABLE, "1"))
    if world_size > 1:
        return Shard(int(os.environ[RANK_VARIABLE]), world_size)
    return Shard(0, 1)


def build_split_caches(loader: SceneLoader, data_paths: DataPaths, cache_dir: Path, version: str,
                       overwrite: bool = False) -> CacheBuildReport:
    """Build (or keep, when up to date) the cache of every scene of `loader` into `cache_dir/<version>`; scenes of
    logs the loader could not read are failures naming the log."""
    provider = MetricCacheProvider(version, loader, maps_root=data_paths.require_maps_root(),
                                   map_version=data_paths.map_version, store=Path(cache_dir) / version)
    return build_caches(provider, [*loader.tokens, *loader.unreadable_tokens], overwrite=overwrite)


def coverage(tokens: Sequence[str], cache_dir: Path, version: str) -> list[str]:
    """Tokens of `tokens` without a stored cache of `version`."""
    store = MetricCacheStore(Path(cache_dir) / version)
    return [token for token in tokens if token not in store]


def _listed(tokens: Sequence[str]) -> str:
    more = f" ... ({len(tokens) - MAX_LISTED} more)" if len(tokens) > MAX_LISTED else ""
    return ", ".join(tokens[:MAX_LISTED]) + more


def format_report(report: CacheBuildReport, shard: Shard) -> str:
    lines = [f"{report.version} shard {shard}: {len(report.tokens)} scenes: {len(report.built)} built, "
             f"{len(report.up_to_date)} up to date, {len(report.failures)} failed; coverage "
             f"{report.covered}/{len(report.tokens)}"]
    for token, reason in list(report.failures.items())[:MAX_LISTED]:
        lines.append(f"  failed {token}: {reason}")
    if len(report.failures) > MAX_LISTED:
        lines.append(f"  ... {len(report.failures) - MAX_LISTED} more failures")
    return "\n".join(lines)


def run(config: MetricCacheBuildConfig, shard: Optional[Shard] = None) -> int:
    """Build (or check) the caches; prints a report and returns the exit status."""
    for version in config.metrics:
        check_version(version)
    data_paths = DataPaths.from_env(config.data_root, config.maps_root, config.map_version)
    split = resolve_split(config, data_paths)
    if config.coverage_only:
        loader = SceneLoader.from_split(split, data_paths, record_unreadable_logs=True)
        tokens = [*loader.tokens, *loader.unreadable_tokens]
        complete = True
        for version in config.metrics:
            missing = coverage(tokens, config.cache_dir, version)
            print(f"{version}: coverage of {split.name}: {len(tokens) - len(missing)}/{len(tokens)}")
            if missing:
                complete = False
                print(f"  without a cache: {_listed(missing)}")
        return EXIT_OK if complete else EXIT_INCOMPLETE
    shard = shard or (parse_shard(config.shard) if config.shard else process_shard())
    try:
        loader = SceneLoader.from_split(split, data_paths, shard=(shard.index, shard.count),
                                        record_unreadable_logs=True)
    except SplitError as exc:
        if shard.count == 1:
            raise
        print(f"shard {shard}: selects no scene of {split.name} ({exc}); nothing to build (check the whole split "
              "with coverage_only=true)")
        return EXIT_OK
    complete = True
    for version in config.metrics:
        report = build_split_caches(loader, data_paths, config.cache_dir, version, config.overwrite)
        print(format_report(report, shard), flush=True)
        complete &= not report.failures
    return EXIT_OK if complete else EXIT_INCOMPLETE


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        config, _ = parse_command_line(MetricCacheBuildConfig, argv, prog="python -m navsim_eval.metric_cache_build",
                                       description=__doc__)
        return run(config)
    except (DataError, EvaluationError) as exc:  # bad keys (ConfigError), split, data folders
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
