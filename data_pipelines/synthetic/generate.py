"""Generate the complete synthetic NAVSIM dataset: maps, logs, camera images, splits and two-stage data.

CLI: ``python -m data_pipelines.synthetic.generate --out DIR [--config tiny|default|FILE.yaml] [key=value ...]``
(``--help`` lists every key; ``--preset`` is accepted for ``--config``).
"""

from __future__ import annotations

import csv
import datetime
import json
import multiprocessing
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from data_pipelines.configuration import ConfigError, config_to_dict, parse_command_line
from data_pipelines.synthetic.config import PRESET_DIR, SyntheticWorldConfig
from data_pipelines.synthetic.layouts import IdAllocator, LayoutInstance, build_instance
from data_pipelines.synthetic.lidar import sweep, write_pcd
from data_pipelines.synthetic.log_writer import (
    FRAME_INTERVAL_US, FrameRenderer, annotations, dump_pickle, ego_frame_state, frame_command, frame_dict, lights,
    make_token,
    signal_states,
)
from data_pipelines.synthetic.map_writer import LOCATIONS, write_maps
from data_pipelines.synthetic.simulation import SIM_DT, required_route_length_m, simulate_log
from data_pipelines.synthetic.splits import (
    SPLIT_FOLDERS, TEST_FOLDER, TRAINVAL_FOLDER, TWO_STAGE_SPLIT, write_splits, write_two_stage_split,
)
from data_pipelines.synthetic.two_stage import (
    PLAN_HORIZON_FRAMES, StageTwoRecord, stage_one_frames, write_stage_two,
)
from data_pipelines.two_stage import ATTRIBUTES_CSV, CSV_COLUMNS

TWO_STAGE_DIRNAME = TWO_STAGE_SPLIT  # the devkit's convention: <data root>/<two-stage split name>/
INFO_FILENAME = "dataset_info.json"
LOCATION_ID_STRIDE = 10_000_000  # map ids of location j start at (j + 1) * stride
BASE_YEAR = 2021
ROLE_INDEX = {"train": 0, "val": 1, "test": 2, "val_maps": 3}  # part of every log's random seed
OUTPUT_NEUTRAL_SETTINGS = ("num_workers",)  # change how a world is generated, not what it holds


@dataclass(frozen=True)
class LogJob:
    index: int
    location: str
    instance: int
    role: str  # train, val, test or val_maps
    seed: tuple[int, ...]


@dataclass
class DatasetInfo:
    """What was generated (also written as dataset_info.json)."""

    root: Path
    config: dict
    maps_root: Path
    navsim_logs: dict[str, Path]
    sensor_blobs: dict[str, Path]
    splits: dict[str, Path]
    two_stage_root: Path | None
    logs_by_split: dict[str, list[str]]
    num_scenes: dict[str, int]
    num_stage_two_scenes: int
    layouts: dict[str, list[dict]] = field(default_factory=dict)
    seconds: float = 0.0
    bytes_on_disk: int = 0


_INSTANCES: dict[tuple[str, int], LayoutInstance] = {}  # set before workers fork
_CONFIG: SyntheticWorldConfig | None = None
_OUT: Path | None = None
_TEXTURES: dict = {}


def build_instances(cfg: SyntheticWorldConfig) -> dict[str, list[LayoutInstance]]:
    """Layout instances per location; kinds cycle so every location holds several different layouts."""
    out = {}
    for j, (location, spec) in enumerate(LOCATIONS.items()):
        ids = IdAllocator((j + 1) * LOCATION_ID_STRIDE)
        instances = []
        for i in range(cfg.instances_per_location + cfg.training_only_instances):
            kind = cfg.layout_kinds[(i + j) % len(cfg.layout_kinds)]
            origin = np.array(spec["origin"]) + np.array([i * cfg.instance_spacing_m, 0.0])
            rng = np.random.default_rng([cfg.seed, j, i, 1])
            instances.append(build_instance(kind, location, i, origin, ids, rng, required_route_length_m(cfg)))
        out[location] = instances
    return out


def logged_locations(cfg: SyntheticWorldConfig) -> list[tuple[int, str]]:
    """(index, name) of the map locations that get logs (every location's map is written regardless)."""
    return [(j, location) for j, location in enumerate(LOCATIONS)
            if not cfg.log_locations or location in cfg.log_locations]


def plan_logs(cfg: SyntheticWorldConfig) -> list[LogJob]:
    groups = []  # (location index, location, instance, [(role, number of logs)]) in job order
    for j, location in logged_locations(cfg):
        for i in range(cfg.instances_per_location):
            test_only = cfg.held_out_test_instances and i == cfg.instances_per_location - 1
            val_maps_only = cfg.held_out_val_instances and i == cfg.instances_per_location - 2
            train_too = not (cfg.held_out_test_instances and test_only) and not val_maps_only
            counts = []
            if train_too:
                counts += [("train", cfg.train_logs_per_instance), ("val", cfg.val_logs_per_instance)]
            if test_only or not cfg.held_out_test_instances:
                counts += [("test", cfg.test_logs_per_instance)]
            if val_maps_only:
                counts += [("val_maps", cfg.test_logs_per_instance)]
            groups.append((j, location, i, counts))
    # training-only instances after every other log, so the job indices (log names) of those logs do not depend on them
    for j, location in logged_locations(cfg):
        for i in range(cfg.instances_per_location, cfg.instances_per_location + cfg.training_only_instances):
            groups.append((j, location, i, [("train", cfg.train_logs_per_instance)]))
    jobs = []
    for j, location, i, counts in groups:
        for role, n in counts:
            for k in range(n):
                jobs.append(LogJob(len(jobs), location, i, role, (cfg.seed, j, i, ROLE_INDEX[role], k)))
    return jobs


def log_name_for(job: LogJob, rng: np.random.Generator) -> str:
    """nuPlan-style log name `YYYY.MM.DD.HH.MM.SS_veh-NN_SSSSS_EEEEE`, unique through the job index."""
    month, day = int(rng.integers(5, 11)), int(rng.integers(1, 29))
    hour, minute = int(rng.integers(7, 19)), int(rng.integers(0, 60))
    vehicle = int(rng.integers(10, 50))
    start = 1000 + 600 * job.index
    return f"{BASE_YEAR}.{month:02d}.{day:02d}.{hour:02d}.{minute:02d}.00_veh-{vehicle:02d}_{start:05d}_{start + 500:05d}"


def _timestamp_us(log_name: str) -> int:
    y, mo, d, h, mi, _ = (int(v) for v in log_name.split("_")[0].split("."))
    return int(datetime.datetime(y, mo, d, h, mi, tzinfo=datetime.timezone.utc).timestamp()) * 1_000_000


def run_log_job(job: LogJob) -> dict:
    """Simulate, render and write one log (and its stage-2 scenes for test logs)."""
    cfg, out = _CONFIG, _OUT
    inst = _INSTANCES[(job.location, job.instance)]
    rng = np.random.default_rng(list(job.seed))
    log_name = log_name_for(job, rng)
    token_fn = lambda *parts: make_token(cfg.seed, log_name, *parts)  # noqa: E731
    res = simulate_log(inst, cfg, rng, token_fn)
    folder = TEST_FOLDER if job.role == "test" else TRAINVAL_FOLDER
    sensor_root = out / "sensor_blobs" / folder
    renderer = FrameRenderer(inst, cfg.image_width, cfg.image_height, cfg.jpeg_quality, cfg.rendered_cameras,
                             cfg.texture_resolution_m, _TEXTURES)
    n = cfg.frames_per_log
    steps = res.logged_steps(n)
    tokens = [token_fn("frame", j) for j in range(n)]
    t0 = _timestamp_us(log_name)
    timestamps = [t0 + j * FRAME_INTERVAL_US for j in range(n)]
    route = res.route.roadblock_ids
    route_str = [str(r) for r in route]
    log_token, scene_token = token_fn("log"), token_fn("scene")
    frames = []
    for j, k in enumerate(steps):
        ego = ego_frame_state(res.ego[k])
        t = k * SIM_DT
        snap = res.snapshots[k]
        cams = renderer.write(sensor_root, log_name, tokens[j], ego, snap, signal_states(res.cycle, t))
        frames.append(frame_dict(
            token=tokens[j], frame_idx=j, timestamp=timestamps[j], log_name=log_name, log_token=log_token,
            scene_token=scene_token, location=inst.location, roadblock_ids=route_str, ego=ego,
            traffic_lights=lights(inst, res.cycle, t), command=frame_command(inst, route, ego), cams=cams,
            prev_token=tokens[j - 1] if j > 0 else None, next_token=tokens[j + 1] if j + 1 < n else None,
            anns=annotations(ego, snap, cfg.annotation_radius_m, tokens[j]),
        ))
    if cfg.lidar:
        for frame in frames:
            write_pcd(sensor_root / frame["lidar_path"], sweep(frame["anns"]["gt_boxes"]))
    log_dir = out / "navsim_logs" / folder
    log_dir.mkdir(parents=True, exist_ok=True)
    dump_pickle(frames, log_dir / f"{log_name}.pkl")
    h, fut = cfg.num_history_frames, cfg.num_future_frames
    scene_tokens = [tokens[c] for c in range(h - 1, n - fut)]
    records: list[StageTwoRecord] = []
    links = []
    if job.role == "test" and cfg.two_stage:
        chosen = stage_one_frames(cfg, n, rng)
        records, links = write_stage_two(cfg, res, log_name, chosen, tokens, timestamps, out / TWO_STAGE_DIRNAME,
                                         renderer)
    return {"job": job.index, "role": job.role, "log_name": log_name, "scene_tokens": scene_tokens,
            "records": [asdict(r) for r in records], "links": links, "layout": inst.kind}


def _init_worker() -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")


def generate_dataset(config: SyntheticWorldConfig, out_root: str | Path, *, overwrite: bool = True,
                     verbose: bool = False) -> DatasetInfo:
    """Write the whole dataset under `out_root` (deterministic in `config`); returns what was written."""
    global _CONFIG, _OUT, _INSTANCES
    start = time.perf_counter()
    out = Path(out_root)
    for sub in ("maps", "navsim_logs", "sensor_blobs", "splits", TWO_STAGE_DIRNAME, INFO_FILENAME):
        target = out / sub
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} exists (pass overwrite=True to replace it)")
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    by_location = build_instances(config)
    write_maps(out / "maps", by_location)
    _CONFIG, _OUT = config, out
    _INSTANCES = {(inst.location, inst.index): inst for insts in by_location.values() for inst in insts}
    jobs = plan_logs(config)
    if config.num_workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(config.num_workers, len(jobs)), initializer=_init_worker) as pool:
            # Contiguous chunks keep a worker on one layout instance (its ground texture is cached).
            chunksize = max(1, len(jobs) // (4 * config.num_workers))
            results = list(pool.imap(run_log_job, jobs, chunksize=chunksize))
    else:
        results = [run_log_job(job) for job in jobs]
    results.sort(key=lambda r: r["job"])
    tokens_by_split: dict[str, dict[str, list[str]]] = {name: {} for name in SPLIT_FOLDERS}
    for r in results:
        tokens_by_split[f"synthetic_{r['role']}"][r["log_name"]] = r["scene_tokens"]
    tokens_by_split = {k: v for k, v in tokens_by_split.items() if v}
    splits = write_splits(out / "splits", tokens_by_split, config.num_history_frames, config.num_future_frames)
    two_stage_root = None
    records = [rec for r in results for rec in r["records"]]
    if config.two_stage and records:
        two_stage_root = out / TWO_STAGE_DIRNAME
        splits[TWO_STAGE_SPLIT] = write_two_stage_split(
            out / "splits", {r["log_name"]: r["links"] for r in results}, config.num_history_frames,
            PLAN_HORIZON_FRAMES)
        with open(two_stage_root / ATTRIBUTES_CSV, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for rec in records:
                writer.writerow(StageTwoRecord(**{**rec, "offsets": tuple(rec["offsets"]),
                                                   "initial_pose": tuple(rec["initial_pose"])}).csv_row())
    info = DatasetInfo(
        root=out, config=config_to_dict(config), maps_root=out / "maps",
        navsim_logs={f: out / "navsim_logs" / f for f in sorted(set(SPLIT_FOLDERS.values()))},
        sensor_blobs={f: out / "sensor_blobs" / f for f in sorted(set(SPLIT_FOLDERS.values()))},
        splits=splits, two_stage_root=two_stage_root,
        logs_by_split={k: sorted(v) for k, v in tokens_by_split.items()},
        num_scenes={k: sum(len(t) for t in v.values()) for k, v in tokens_by_split.items()},
        num_stage_two_scenes=len(records),
        layouts={loc: [{"index": i.index, "kind": i.kind, **{k: v for k, v in i.params.items()}} for i in insts]
                 for loc, insts in by_location.items()},
    )
    info.seconds = time.perf_counter() - start
    info.bytes_on_disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    (out / INFO_FILENAME).write_text(json.dumps(_info_json(info), indent=1, sort_keys=True) + "\n")
    return info


def _info_json(info: DatasetInfo) -> dict:
    """dataset_info.json content: everything except timing and size (so the file is deterministic too)."""
    rel = lambda p: str(Path(p).relative_to(info.root)) if p is not None else None  # noqa: E731
    return {
        "config": info.config, "maps_root": rel(info.maps_root),
        "navsim_logs": {k: rel(v) for k, v in info.navsim_logs.items()},
        "sensor_blobs": {k: rel(v) for k, v in info.sensor_blobs.items()},
        "splits": {k: rel(v) for k, v in info.splits.items()}, "two_stage_root": rel(info.two_stage_root),
        "logs_by_split": info.logs_by_split, "num_scenes": info.num_scenes,
        "num_stage_two_scenes": info.num_stage_two_scenes, "layouts": info.layouts,
    }


def settings_differing_from(root: str | Path, config: SyntheticWorldConfig) -> dict[str, tuple] | None:
    """Settings of the world at ``root`` (its dataset_info.json) that differ from ``config``, as
    {key: (recorded, requested)}; None when ``root`` holds no dataset_info.json (not a generated world)."""
    path = Path(root) / INFO_FILENAME
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a dataset_info.json written by the generator ({err})", "config") from None
    requested = json.loads(json.dumps(config_to_dict(config)))
    return {key: (recorded.get(key), value) for key, value in requested.items()
            if key not in OUTPUT_NEUTRAL_SETTINGS and recorded.get(key) != value}


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, cli = parse_command_line(
            SyntheticWorldConfig, argv, prog="python -m data_pipelines.synthetic.generate",
            description=__doc__.splitlines()[0], options={"--out": "output dataset root (OPENSCENE_DATA_ROOT)"},
            preset_dir=PRESET_DIR, default_preset="default")
        if cli.options["out"] is None:
            raise ConfigError("--out DIR is required (the dataset root to write)", "out")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = generate_dataset(cfg, Path(cli.options["out"]))
    print(f"synthetic dataset written to {info.root}")
    for split, n in info.num_scenes.items():
        print(f"  {split}: {len(info.logs_by_split[split])} logs, {n} scenes")
    print(f"  two-stage: {info.num_stage_two_scenes} stage-2 scenes")
    print(f"  time: {info.seconds:.1f} s   size on disk: {info.bytes_on_disk / 1e6:.1f} MB")
    print(f"  export OPENSCENE_DATA_ROOT={info.root.resolve()} NUPLAN_MAPS_ROOT={info.maps_root.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
