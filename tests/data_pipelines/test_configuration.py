"""Typed dataclass configs from YAML presets and key=value overrides."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from data_pipelines.configuration import (
    ConfigError, apply_overrides, config_to_dict, load_config, parse_overrides, save_config,
)


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    name: Optional[str] = None


@dataclass(frozen=True)
class Outer:
    steps: int = 10
    flag: bool = False
    path: Path = Path("out")
    stages: tuple[str, ...] = ("a", "b")
    kind: Literal["x", "y"] = "x"
    mode: Mode = Mode.FAST
    inner: Inner = Inner()
    extra: dict[str, float] = field(default_factory=dict)
    limit: Optional[int] = None


def test_defaults_without_inputs():
    assert load_config(Outer) == Outer()


def test_overrides_convert_types():
    cfg = load_config(Outer, overrides=[
        "steps=5", "flag=true", "path=/tmp/x", "stages=[il,dipole]", "kind=y", "mode=slow",
        "inner.lr=2e-4", "inner.betas=[0.8,0.9]", "extra.w=3", "limit=7",
    ])
    assert cfg.steps == 5 and isinstance(cfg.steps, int)
    assert cfg.flag is True
    assert cfg.path == Path("/tmp/x")
    assert cfg.stages == ("il", "dipole")
    assert cfg.kind == "y" and cfg.mode is Mode.SLOW
    assert cfg.inner.lr == pytest.approx(2e-4) and isinstance(cfg.inner.lr, float)
    assert cfg.inner.betas == (0.8, 0.9)
    assert cfg.extra == {"w": 3.0}
    assert cfg.limit == 7
    assert load_config(Outer, overrides=["limit=null", "inner.name=abc"]).limit is None


def test_yaml_then_overrides_and_base_chain(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 3\ninner:\n  lr: 0.5\n  name: base\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nflag: yes\ninner:\n  name: child\n")
    cfg = load_config(Outer, tmp_path / "child.yaml", ["steps=4"])
    assert cfg.steps == 4 and cfg.flag is True
    assert cfg.inner.lr == 0.5 and cfg.inner.name == "child"


@pytest.mark.parametrize("override, key", [("stepz=1", "stepz"), ("inner.lrr=1", "inner.lrr")])
def test_unknown_key_names_key_and_valid_keys(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(Outer, overrides=[override])
    message = str(err.value)
    assert repr(key) in message
    assert "valid keys" in message and ("steps" in message or "lr" in message)


def test_unknown_key_in_file_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match="bad.yaml.*'inner.momentum'"):
        load_config(Outer, path)


@pytest.mark.parametrize("override", ["steps=abc", "flag=maybe", "kind=z", "mode=medium", "inner.betas=[1,2,3]",
                                      "steps=1.5"])
def test_bad_values_raise(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        load_config(Outer, overrides=[override])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_round_trip_through_yaml(tmp_path):
    cfg = apply_overrides(Outer(), ["steps=9", "mode=slow", "inner.betas=[0.1,0.2]", "extra.a=1"])
    path = save_config(cfg, tmp_path / "cfg.yaml")
    assert load_config(Outer, path) == cfg
    assert config_to_dict(cfg)["mode"] == "slow"


# ------------------------------------------------------------------ declared ranges, help, command line

from typing import Annotated  # noqa: E402

from data_pipelines.configuration import (  # noqa: E402
    REQUIRED, NonNegativeInt, PositiveFloat, Range, UnknownPresetError, check_ranges, field_help, find_preset,
    parse_command_line, preset_names,
)


@dataclass(frozen=True)
class Ranged:
    """A section with declared limits."""

    steps: NonNegativeInt = 3  # optimizer steps
    lr: PositiveFloat = 1e-3  # learning rate
    quality: Annotated[int, Range(low=1, high=95)] = 90
    """JPEG quality of the images."""
    offsets: tuple[Annotated[float, Range(low=-2.0, high=2.0)], ...] = (0.0,)  # lateral offsets
    limit: Optional[NonNegativeInt] = None  # keep only the first N


@dataclass(frozen=True)
class Command:
    """A command with a required key, a section and a list of bare arguments."""

    name: Annotated[str, REQUIRED] = ""  # run name
    dry_run: bool = False  # only print what would run
    files: tuple[str, ...] = ()  # input files
    ranged: Ranged = Ranged()


@pytest.mark.parametrize("override, key", [
    ("steps=-1", "steps"), ("lr=0", "lr"), ("lr=-1e-3", "lr"), ("lr=nan", "lr"), ("lr=inf", "lr"),
    ("quality=96", "quality"), ("offsets=[0,2.5]", "offsets"), ("limit=-3", "limit"),
])
def test_declared_ranges_are_checked_when_the_config_loads(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(Ranged, overrides=[override])
    assert err.value.key == key and repr(key) in str(err.value)


def test_ranges_accept_their_bounds_nan_is_refused_everywhere_and_files_are_checked(tmp_path):
    cfg = load_config(Ranged, overrides=["steps=0", "quality=95", "offsets=[-2,2]", "limit=null"])
    assert cfg.steps == 0 and cfg.quality == 95 and cfg.offsets == (-2.0, 2.0) and cfg.limit is None
    with pytest.raises(ConfigError, match="'inner.lr' must be a number, got NaN"):
        load_config(Outer, overrides=["inner.lr=.nan"])
    (tmp_path / "bad.yaml").write_text("ranged:\n  steps: -4\n")
    with pytest.raises(ConfigError, match="bad.yaml: key 'ranged.steps' must be >= 0, got -4"):
        load_config(Command, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="'quality' must be in \\[1, 95\\]"):
        check_ranges(Ranged(quality=0))


def test_help_comes_from_the_field_definitions():
    docs = field_help(Ranged)
    assert docs["steps"] == "optimizer steps" and docs["quality"] == "JPEG quality of the images."
    assert field_help(Command)["ranged"] == "A section with declared limits."


def test_command_line_mixes_flags_overrides_and_bare_arguments(tmp_path):
    argv = ["a.txt", "--dry-run", "name=x", "--ranged.steps", "5", "b.txt", "--ranged.lr=0.5", "--go"]
    cfg, cli = parse_command_line(Command, argv, positional="files", switches={"--go": "start"})
    assert cfg == Command(name="x", dry_run=True, files=("a.txt", "b.txt"), ranged=Ranged(steps=5, lr=0.5))
    assert cli.switches == {"go": True}
    assert parse_command_line(Command, ["name=x", "--no-dry-run"])[0].dry_run is False
    with pytest.raises(ConfigError, match="missing required key.*name"):
        parse_command_line(Command, ["--dry-run"])
    with pytest.raises(ConfigError, match="'--gone' is neither a flag"):
        parse_command_line(Command, ["name=x", "--gone"])
    with pytest.raises(ConfigError, match="'stray' is not key=value"):
        parse_command_line(Command, ["name=x", "stray"])
    with pytest.raises(ConfigError, match="'ranged.steps' must be >= 0"):
        parse_command_line(Command, ["name=x", "--ranged.steps", "-1"])


def test_presets_are_found_by_name_in_their_folder_and_unknown_names_list_the_others(tmp_path):
    (tmp_path / "fast.yaml").write_text("name: quick\nranged:\n  steps: 7\n")
    (tmp_path / "slow.yaml").write_text("base: fast.yaml\nranged:\n  steps: 70\n")
    assert preset_names(tmp_path) == ["fast", "slow"]
    assert find_preset(tmp_path, "slow") == tmp_path / "slow.yaml"
    with pytest.raises(UnknownPresetError, match="unknown preset 'medium'.*\\['fast', 'slow'\\]") as err:
        find_preset(tmp_path, "medium")
    assert err.value.choices == ["fast", "slow"] and isinstance(err.value, ConfigError)
    # --config takes a file or a preset name; without the flag the default preset loads
    assert parse_command_line(Command, ["--config", "slow"], preset_dir=tmp_path)[0] == Command(
        name="quick", ranged=Ranged(steps=70))
    cfg, cli = parse_command_line(Command, [], preset_dir=tmp_path, default_preset="fast")
    assert cfg.ranged.steps == 7 and cli.config_file == tmp_path / "fast.yaml"
    assert parse_command_line(Command, ["--config", str(tmp_path / "fast.yaml"), "name=x"])[0].name == "x"
    with pytest.raises(ConfigError, match="--config 'medium': no such file, and unknown preset") as err:
        parse_command_line(Command, ["--config", "medium"], preset_dir=tmp_path)
    assert err.value.key == "config"


def test_help_and_print_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        parse_command_line(Command, ["--help"], prog="cmd")
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "  ranged.steps (int, >= 0) = 3  optimizer steps" in text
    assert "  ranged.quality (int, in [1, 95]) = 90  JPEG quality of the images." in text
    assert "  name (str, required) = ''  run name" in text and "  ranged.*  A section with declared limits." in text
    with pytest.raises(SystemExit):
        parse_command_line(Command, ["name=y", "ranged.offsets=[1,-1]", "--print-config"])
    printed = capsys.readouterr().out
    assert "steps: 3  # int, >= 0; optimizer steps" in printed
    (tmp_path / "printed.yaml").write_text(printed)
    assert load_config(Command, tmp_path / "printed.yaml") == Command(name="y", ranged=Ranged(offsets=(1.0, -1.0)))


def test_text_keys_keep_the_value_as_typed():
    @dataclass(frozen=True)
    class Texts:
        split: str = "x"
        note: Optional[str] = "n"
        kind: Literal["auto", "on", "off"] = "auto"
        anything: dict[str, object] = field(default_factory=dict)
        ratio: float = 0.5

    cfg = load_config(Texts, overrides=["split=1.10", "note=#1 team", "kind=off", "anything.head.depth=1",
                                        "ratio=1e-3"])
    assert cfg.split == "1.10" and cfg.note == "#1 team" and cfg.kind == "off"
    assert cfg.anything == {"head": {"depth": 1}} and cfg.ratio == 0.001
    nested = load_config(Texts, overrides=["anything.head.depth=2"], base=Texts(anything={"head": {"width": 8}}))
    assert nested.anything == {"head": {"width": 8, "depth": 2}}  # a dotted key sets one leaf, siblings stay
    assert load_config(Texts, overrides=["note=null"]).note is None


def test_unknown_keys_suggest_the_close_one_and_entry_points_exit_2(capsys):
    from data_pipelines.configuration import run_entry_point

    with pytest.raises(ConfigError, match="did you mean inner.lr"):
        load_config(Outer, overrides=["inner.lrr=1"])
    with pytest.raises(ConfigError, match="did you mean --dry-run"):
        parse_command_line(Command, ["name=x", "--dry-rum"])
    assert run_entry_point(lambda: parse_command_line(Command, ["--dry-run"])[0] and 0) == 2
    assert "error: command line: missing required key(s) name" in capsys.readouterr().err
