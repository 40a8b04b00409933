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
