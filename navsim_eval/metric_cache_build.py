"""Build the PDM metric caches of a whole split up front, sharded by log over processes and nodes.

    python -m navsim_eval.metric_cache_build split=SPLIT.yaml cache_dir=DIR [metrics=[v1,v2]] [data_root=DIR]
        [maps_root=DIR] [shard=i/n] [overwrite=true] [coverage_only=true] [--config PRESET.yaml]
    accelerate launch --num_processes N -m navsim_eval.metric_cache_build split=... cache_dir=...

Caches go to ``<cache_dir>/<version>`` (the layout ``python -m navsim_eval.score --cache-dir`` and the evaluation's
``--metric-cache-dir`` read). Each process reads only the logs of its shard (logs i, i+n, ... of the split in
name order; ``shard`` defaults to accelerate's process index / count, 0/1 without a launcher); an entry that is
up to date (same source fingerprint) is kept, others are built. Failures are listed per token and the rest is
built. The command prints, per version, what it built and the coverage of its shard; ``coverage_only=true``
builds nothing and reports the coverage of the whole split (tokens with a stored cache). Exit status 0 when every
token of the shard (or split) has a cache, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from data_pipelines.configuration import ConfigError, load_config
from data_pipelines.errors import DataError
from data_pipelines.log_reader import find_log_files, log_name_of
from data_pipelines.paths import DataPaths
from data_pipelines.scene_filter import Split, load_split, select_log_names
from data_pipelines.scene_loader import SceneLoader
from navsim_eval.pdm.constants import check_version
from navsim_eval.pdm.metric_cache import MetricCacheProvider, MetricCacheStore

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2
MAX_LISTED = 20  # tokens listed per kind of problem in the printed report


@dataclass
class MetricCacheBuildConfig:
    split: Optional[Path] = field(default=None, metadata={"help": "split YAML (devkit format)"})
    cache_dir: Optional[Path] = field(default=None, metadata={"help": "caches are stored in <cache_dir>/<version>"})
    metrics: list[str] = field(default_factory=lambda: ["v1"], metadata={"help": "metric versions: [v1], [v2] or [v1,v2]"})
    data_root: Optional[Path] = field(default=None, metadata={"help": "dataset root (default $OPENSCENE_DATA_ROOT)"})
    maps_root: Optional[Path] = field(default=None, metadata={"help": "map root (default $NUPLAN_MAPS_ROOT or <data_root>/maps)"})
    map_version: Optional[str] = field(default=None, metadata={"help": "map index name (default nuplan-maps-v1.0)"})
    shard: Optional[str] = field(default=None, metadata={"help": "i/n: this process builds logs i, i+n, ... (default: accelerate's index/count)"})
    overwrite: bool = field(default=False, metadata={"help": "rebuild entries that are up to date too"})
    coverage_only: bool = field(default=False, metadata={"help": "build nothing; report the split's coverage"})


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
    """This process's shard from accelerate (process index / count over all nodes); 0/1 without a launcher."""
    from accelerate import PartialState

    state = PartialState()
    return Shard(state.process_index, state.num_processes)


def shard_split(split: Split, data_paths: DataPaths, shard: Shard) -> Optional[Split]:
    """The split restricted to the shard's logs (None when the shard has no log)."""
    files = sorted(log_name_of(p) for p in find_log_files(data_paths.navsim_log_path(split.data_split)))
    logs = select_log_names(files, split.scene_filter)[shard.index :: shard.count]
    if not logs:
        return None
    return dataclasses.replace(split, scene_filter=dataclasses.replace(split.scene_filter, log_names=logs))


@dataclass
class BuildReport:
    """What one process did for one metric version."""

    version: str
    tokens: list[str]
    built: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def covered(self) -> int:
        return len(self.built) + len(self.up_to_date)


def build_caches(loader: SceneLoader, data_paths: DataPaths, cache_dir: Path, version: str,
                 overwrite: bool = False) -> BuildReport:
    """Build (or keep, when up to date) the cache of every scene of `loader`; failures recorded per token."""
    store = MetricCacheStore(Path(cache_dir) / version)
    provider = MetricCacheProvider(version, loader, maps_root=data_paths.require_maps_root(),
                                   map_version=data_paths.map_version, store=store)
    report = BuildReport(version, list(loader.tokens))
    for token in report.tokens:
        try:
            if overwrite:
                store.save(provider.build(provider.scene(token)))
                report.built.append(token)
                continue
            before = provider.num_built
            provider.get(token)
            (report.built if provider.num_built > before else report.up_to_date).append(token)
        except (DataError, ValueError) as exc:
            report.failures[token] = f"{type(exc).__name__}: {exc}"
    return report


def coverage(tokens: Sequence[str], cache_dir: Path, version: str) -> list[str]:
    """Tokens of `tokens` without a stored cache of `version`."""
    store = MetricCacheStore(Path(cache_dir) / version)
    return [token for token in tokens if token not in store]


def _listed(tokens: Sequence[str]) -> str:
    more = f" ... ({len(tokens) - MAX_LISTED} more)" if len(tokens) > MAX_LISTED else ""
    return ", ".join(tokens[:MAX_LISTED]) + more


def format_report(report: BuildReport, shard: Shard) -> str:
    lines = [f"{report.version} shard {shard}: {len(report.tokens)} scenes: {len(report.built)} built, "
             f"{len(report.up_to_date)} up to date, {len(report.failures)} failed; coverage "
             f"{report.covered}/{len(report.tokens)}"]
    for token, reason in list(report.failures.items())[:MAX_LISTED]:
        lines.append(f"  failed {token}: {reason}")
    if len(report.failures) > MAX_LISTED:
        lines.append(f"  ... {len(report.failures) - MAX_LISTED} more failures")
    return "\n".join(lines)


def config_help() -> str:
    lines = ["keys (key=value):"]
    for f in dataclasses.fields(MetricCacheBuildConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {f.name} (default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m navsim_eval.metric_cache_build", description=__doc__.split("\n")[0],
                                     epilog=config_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML preset of the keys below")
    parser.add_argument("overrides", nargs="*", help="key=value")
    return parser


def run(config: MetricCacheBuildConfig, shard: Optional[Shard] = None) -> int:
    """Build (or check) the caches; prints a report and returns the exit status."""
    if config.split is None or config.cache_dir is None:
        raise ConfigError("split and cache_dir are required (split=SPLIT.yaml cache_dir=DIR)")
    for version in config.metrics:
        check_version(version)
    data_paths = DataPaths.from_env(config.data_root, config.maps_root, config.map_version)
    split = load_split(config.split)
    if config.coverage_only:
        tokens = SceneLoader.from_split(split, data_paths).tokens
        complete = True
        for version in config.metrics:
            missing = coverage(tokens, config.cache_dir, version)
            print(f"{version}: coverage of {split.name}: {len(tokens) - len(missing)}/{len(tokens)}")
            if missing:
                complete = False
                print(f"  without a cache: {_listed(missing)}")
        return EXIT_OK if complete else EXIT_INCOMPLETE
    shard = shard or (parse_shard(config.shard) if config.shard else process_shard())
    shard_of_split = shard_split(split, data_paths, shard)
    if shard_of_split is None:
        print(f"shard {shard}: no log of {split.name} falls in this shard; nothing to build")
        return EXIT_OK
    loader = SceneLoader.from_split(shard_of_split, data_paths)
    complete = True
    for version in config.metrics:
        report = build_caches(loader, data_paths, config.cache_dir, version, config.overwrite)
        print(format_report(report, shard), flush=True)
        complete &= not report.failures
    return EXIT_OK if complete else EXIT_INCOMPLETE


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(MetricCacheBuildConfig, args.config, args.overrides)
        return run(config)
    except DataError as exc:  # bad keys, split, data folders (ConfigError is one)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
