"""Generation end to end: determinism, on-disk layout, size accounting, config errors and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_pipelines.configuration import ConfigError
from data_pipelines.synthetic.config import PRESET_DIR, SyntheticConfigError, SyntheticWorldConfig, build_config
from data_pipelines.synthetic.generate import (
    OUTPUT_NEUTRAL_SETTINGS, build_instances, generate_dataset, main, settings_differing_from,
)
from data_pipelines.synthetic.map_writer import LOCATIONS, MAP_VERSION_NAME


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_config_gives_identical_files(tiny_dataset, tiny_config, tmp_path):
    # A second run with two worker processes must write byte-identical pickles, JPEGs, CSV and YAMLs.
    second = generate_dataset(build_config("tiny", {"num_workers": 2}), tmp_path / "again")
    first_files, second_files = _files(tiny_dataset.root), _files(second.root)
    assert sorted(first_files) == sorted(second_files)
    differing = [name for name in first_files if first_files[name] != second_files[name]
                 and not name.endswith("dataset_info.json")]
    assert differing == []
    info_a = json.loads(first_files["dataset_info.json"])
    info_b = json.loads(second_files["dataset_info.json"])
    for key in OUTPUT_NEUTRAL_SETTINGS:
        info_a["config"].pop(key), info_b["config"].pop(key)
    assert info_a == info_b


def test_settings_differing_from_a_generated_world(tiny_dataset, tmp_path):
    root = tiny_dataset.root
    assert settings_differing_from(root, build_config("tiny")) == {}
    assert settings_differing_from(root, build_config("tiny", ["num_workers=2"])) == {}  # same output
    assert settings_differing_from(root, build_config("tiny", ["seed=3", "test_logs_per_instance=2"])) == {
        "seed": (0, 3), "test_logs_per_instance": (1, 2)}
    assert settings_differing_from(tmp_path, build_config("tiny")) is None  # not a generated world
    (tmp_path / "dataset_info.json").write_text("{not json")
    with pytest.raises(ConfigError, match="dataset_info.json"):
        settings_differing_from(tmp_path, build_config("tiny"))


def test_layout_on_disk(tiny_dataset):
    root = tiny_dataset.root
    index = json.loads((root / "maps" / f"{MAP_VERSION_NAME}.json").read_text())
    assert sorted(index) == sorted(LOCATIONS)
    for location, entry in index.items():
        assert (root / "maps" / location / entry["version"] / "map.gpkg").is_file()
    for folder in ("synthetic_trainval", "synthetic_test"):
        logs = sorted((root / "navsim_logs" / folder).glob("*.pkl"))
        assert logs
        for log in logs:
            assert (root / "sensor_blobs" / folder / log.stem / "CAM_F0").is_dir()
    assert (root / "splits" / "synthetic_train.yaml").is_file()
    assert (root / "splits" / "synthetic_test.yaml").is_file()
    assert tiny_dataset.bytes_on_disk > 0 and tiny_dataset.seconds > 0


def test_seed_and_config_choose_the_geometry(tiny_config):
    base = build_instances(tiny_config)
    reseeded = build_instances(build_config("tiny", {"seed": 7}))
    params = lambda insts: [(i.kind, i.params) for loc in sorted(insts) for i in insts[loc]]  # noqa: E731
    assert params(base) != params(reseeded)
    curves = build_instances(build_config("tiny", {"layout_kinds": ("curve",)}))
    assert all(i.kind == "curve" for insts in curves.values() for i in insts)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["no_such_key=1"], "no_such_key"),
        (["frames_per_log=5"], "frames_per_log"),
        (["image_width=abc"], "image_width"),
        (["jpeg_quality=0"], "jpeg_quality"),
        (["layout_kinds=straight,roundabout"], "layout_kinds"),
        (["rendered_cameras=CAM_X"], "rendered_cameras"),
        (["novalue"], "novalue"),
        (["image_width=0"], "image_width"),
        (["lane_change_probability=1.5"], "lane_change_probability"),
        (["two_stage_lateral_offsets_m=1,nan"], "two_stage_lateral_offsets_m[1]"),
        (["instance_spacing_m=10"], "instance_spacing_m"),
        (["held_out_val_instances=true", "instances_per_location=2"], "held_out_val_instances"),
    ],
)
def test_bad_config_names_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        build_config("tiny", overrides)
    assert err.value.key == key
    assert repr(key) in str(err.value)


def test_held_out_validation_instances_keep_the_training_drives():
    from data_pipelines.synthetic.generate import plan_logs

    base = build_config("default", [])
    held = build_config("default", ["instances_per_location=4", "held_out_val_instances=true"])
    roles = {(job.location, job.instance): {j.role for j in plan_logs(held)
                                            if (j.location, j.instance) == (job.location, job.instance)}
             for job in plan_logs(held)}
    assert {frozenset(r) for r in roles.values()} == {frozenset({"train", "val"}), frozenset({"val_maps"}),
                                                      frozenset({"test"}), frozenset({"train"})}
    training_only = range(held.instances_per_location, held.instances_per_location + base.training_only_instances)
    assert all(roles[(location, 2)] == {"val_maps"} and roles[(location, 3)] == {"test"}
               and all(roles[(location, i)] == {"train"} for i in training_only)
               for location, _ in roles)
    # the training and validation drives of the shared instances are those of the world without the held-out
    # validation instance; the training-only instances follow every other instance, so only their index moves
    def seeds(cfg, role, shared_only=True):
        return sorted(j.seed for j in plan_logs(cfg)
                      if j.role == role and (not shared_only or j.instance < base.instances_per_location - 1))
    assert seeds(held, "train") == seeds(base, "train") and seeds(held, "val") == seeds(base, "val")
    assert len(seeds(held, "train", shared_only=False)) == len(seeds(base, "train", shared_only=False))
    assert len(seeds(held, "val_maps")) == len(seeds(base, "test"))


def test_training_only_instances_add_training_drives_and_keep_every_other_drive():
    from data_pipelines.synthetic.generate import build_instances, plan_logs

    base = build_config("tiny", [])
    more = build_config("tiny", ["training_only_instances=2"])
    base_jobs, more_jobs = plan_logs(base), plan_logs(more)
    # every log of the base world keeps its job index (log name) and seed, so its drive and tokens are unchanged
    assert more_jobs[:len(base_jobs)] == base_jobs
    extra = more_jobs[len(base_jobs):]
    locations = {job.location for job in base_jobs}
    assert len(extra) == 2 * len(locations) * base.train_logs_per_instance
    assert {job.role for job in extra} == {"train"}
    assert {job.instance for job in extra} == {base.instances_per_location, base.instances_per_location + 1}
    # the base world's map instances keep their geometry and map ids; the new ones get fresh ids
    base_maps, more_maps = build_instances(base), build_instances(more)
    for location, instances in base_maps.items():
        assert len(more_maps[location]) == len(instances) + 2
        for old, new in zip(instances, more_maps[location]):
            assert (old.kind, sorted(old.lanes)) == (new.kind, sorted(new.lanes))
            assert all(np.array_equal(old.lanes[i].centerline, new.lanes[i].centerline) for i in old.lanes)
        old_ids = {i for inst in instances for i in inst.lanes}
        assert not old_ids & {i for inst in more_maps[location][len(instances):] for i in inst.lanes}


def test_unknown_preset():
    with pytest.raises(SyntheticConfigError, match="preset"):
        build_config("huge")


def test_overrides_are_typed():
    cfg = build_config("tiny", ["seed=3", "held_out_test_instances=false", "two_stage_lateral_offsets_m=-1,0.5",
                                "layout_kinds=curve"])
    assert cfg.seed == 3 and cfg.held_out_test_instances is False
    assert cfg.two_stage_lateral_offsets_m == (-1.0, 0.5) and cfg.layout_kinds == ("curve",)


def test_cli_reports_bad_key(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--preset", "tiny", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["--config", "tiny", "seed=1"]) == 2
    assert "--out" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_presets_are_yaml_files_and_direct_construction_checks_ranges():
    assert sorted(p.stem for p in PRESET_DIR.glob("*.yaml")) == ["default", "realistic", "tiny"]
    assert build_config("default") == SyntheticWorldConfig(training_only_instances=4)
    assert build_config(str(PRESET_DIR / "tiny.yaml")) == build_config("tiny")
    with pytest.raises(ConfigError, match="'jpeg_quality' must be in \\[1, 95\\]"):
        SyntheticWorldConfig(jpeg_quality=0)


def test_cli_help_and_print_config_list_every_key(capsys, tmp_path):
    import dataclasses

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for f in dataclasses.fields(SyntheticWorldConfig):
        line = next(line for line in text.splitlines() if line.startswith(f"  {f.name} ("))
        assert "=" in line and len(line.split("  ")) >= 3, line  # type, default and help on one line
    with pytest.raises(SystemExit):
        main(["--config", "tiny", "seed=5", "--print-config"])
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    assert build_config(str(printed)) == build_config("tiny", ["seed=5"])
