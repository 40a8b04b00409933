"""launch/make_submission.py: write (v1, v2), merge seeds, validate (exit codes, clear reports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from navsim_eval.submission import UnsafePickleError, load_submission, write_submission
from tests.data_pipelines.data_helpers import code_running_pickle
from tests.launch.conftest import load_launch_script

META = ["--method", "DIPOLE", "--repo-url", "https://example.org/dipole", "--authors", "A. Author",
        "--email", "a@example.org", "--institution", "Inst", "--country", "Nowhere"]


@pytest.fixture()
def script(world, monkeypatch):
    monkeypatch.setenv("OPENSCENE_DATA_ROOT", str(world))
    monkeypatch.delenv("NUPLAN_MAPS_ROOT", raising=False)
    return load_launch_script("make_submission")


def _split_tokens(world: Path) -> list[str]:
    from data_pipelines.scene_loader import SceneLoader
    from data_pipelines.paths import DataPaths

    return SceneLoader.from_split(world / "splits" / "synthetic_test.yaml", DataPaths.from_env(world)).tokens


def test_v1_write_validate_round_trip_and_merge(script, world, checkpoint, tmp_path, capsys):
    seeds_dir, other_dir = tmp_path / "seeds", tmp_path / "other"
    assert script.main(["write", "--checkpoint", str(checkpoint), "--num-steps", "1", "--seeds", "0,1",
                        "--batch-size", "8", *META, "--out", str(seeds_dir)]) == 0
    assert script.main(["validate", str(seeds_dir / "submission.pkl")]) == 0
    assert "RESULT: PASS" in capsys.readouterr().out
    submission, _ = load_submission(seeds_dir / "submission.pkl")
    tokens = set(_split_tokens(world))
    assert len(submission["predictions"]) == 2 and all(set(p) == tokens for p in submission["predictions"])
    assert submission["team_name"] == "<a href=https://example.org/dipole>DIPOLE</a>"
    assert submission["country / region"] == "Nowhere"
    first = next(iter(tokens))
    assert not np.array_equal(submission["predictions"][0][first].poses, submission["predictions"][1][first].poses)

    assert script.main(["write", "--planner", "constant_velocity", *META, "--out", str(other_dir)]) == 0
    merged = tmp_path / "merged"
    assert script.main(["merge", str(seeds_dir / "submission.pkl"), str(other_dir / "submission.pkl"),
                        "--out", str(merged)]) == 0
    assert script.main(["validate", str(merged / "submission.pkl"), "--format", "v1"]) == 0
    assert len(load_submission(merged / "submission.pkl")[0]["predictions"]) == 3


@pytest.mark.parametrize("dtype", ["auto", "float32"])
def test_bfloat16_checkpoint_writes_a_valid_submission(script, world, bf16_checkpoint, tmp_path, capsys, dtype):
    out = tmp_path / "bf16"
    assert script.main(["write", "--checkpoint", str(bf16_checkpoint), "--dtype", dtype, "--num-steps", "1",
                        *META, "--out", str(out)]) == 0
    assert script.main(["validate", str(out / "submission.pkl")]) == 0
    assert "RESULT: PASS" in capsys.readouterr().out
    submission, _ = load_submission(out / "submission.pkl")
    assert set(submission["predictions"][0]) == set(_split_tokens(world))


def test_v2_two_stage_write_and_validate(script, world, tmp_path, capsys):
    out = tmp_path / "v2"
    assert script.main(["write", "--planner", "constant_velocity", "--format", "v2", *META, "--out", str(out)]) == 0
    assert script.main(["validate", str(out / "submission.pkl"), "--format", "v2"]) == 0
    submission, _ = load_submission(out / "submission.pkl")
    assert set(submission["first_stage_predictions"][0]) == set(_split_tokens(world))
    assert submission["second_stage_predictions"][0]
    assert all(len(t) == 17 for t in submission["second_stage_predictions"][0])


def test_validate_fails_with_a_clear_report(script, tmp_path, capsys):
    out = tmp_path / "cv"
    assert script.main(["write", "--planner", "constant_velocity", *META, "--out", str(out)]) == 0
    submission, _ = load_submission(out / "submission.pkl")
    dropped = sorted(submission["predictions"][0])[0]
    del submission["predictions"][0][dropped]
    broken = write_submission(submission, tmp_path / "broken")
    capsys.readouterr()
    assert script.main(["validate", str(broken)]) == 1
    report = capsys.readouterr().out
    assert "RESULT: FAIL" in report and dropped in report and "missing" in report


def test_validate_and_merge_refuse_a_code_running_pickle(script, tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil" / "submission.pkl"
    evil.parent.mkdir()
    evil.write_bytes(code_running_pickle(marker, wrap=lambda payload: {"predictions": [{"tok": payload}]}))
    capsys.readouterr()
    assert script.main(["validate", str(evil)]) == 1
    assert f"submission file {evil}: references" in capsys.readouterr().out
    with pytest.raises(UnsafePickleError, match=r"submission\.pkl: references .*system"):
        script.main(["merge", str(evil), str(evil), "--out", str(tmp_path / "merged")])
    assert not marker.exists()


def test_write_from_incomplete_results_names_the_missing_tokens(script, tmp_path):
    from navsim_eval.evaluation.results import Variant, make_row, write_rows

    results = write_rows(tmp_path / "results.csv", [make_row("only_one_token", Variant("human"), "v1",
                                                             metrics={"score": 1.0}, poses=np.zeros((8, 3)))])
    with pytest.raises(SystemExit, match="results.csv: no human trajectory"):
        script.main(["write", "--planner", "human", "--from-results", str(results), *META,
                     "--out", str(tmp_path / "x")])


def test_validate_against_a_split_yaml_whose_logs_are_not_on_disk(script, tmp_path, capsys):
    """The navtest case: the devkit split YAML lists the tokens; the test logs need not be present."""
    from navsim_eval.submission import SubmissionMetadata, build_v1_submission

    tokens = ["0123456789abcdef", "fedcba9876543210"]
    split = tmp_path / "navtest_like.yaml"
    split.write_text("data_split: not_downloaded\nscene_filter:\n  tokens:\n" + "".join(f"  - '{t}'\n" for t in tokens))
    meta = SubmissionMetadata.linked("M", "https://example.org", authors="A", email="a@example.org",
                                     institution="I", country_region="C")
    good = write_submission(build_v1_submission([{t: np.zeros((8, 3)) for t in tokens}], meta), tmp_path / "good")
    args = ["--split", str(split), "--data-root", str(tmp_path / "empty_root")]
    assert script.main(["validate", str(good), *args]) == 0
    bad = write_submission(build_v1_submission([{tokens[0]: np.zeros((8, 3))}], meta), tmp_path / "bad")
    capsys.readouterr()
    assert script.main(["validate", str(bad), *args]) == 1
    assert tokens[1] in capsys.readouterr().out


def test_commands_read_the_config_grammar_and_name_missing_keys(script, capsys):
    from data_pipelines.configuration import ConfigError

    config = script.parse_args(["write", "planner=human", "method=M", "repo_url=https://x", "authors=A",
                                "--email", "e@x", "--institution", "I", "--country", "C", "--out", "o", "seeds=[1,2]"])
    assert config.planner == "human" and config.seeds == (1, 2) and config.country == "C"
    merge = script.parse_args(["merge", "a.pkl", "b.pkl", "--out", "m"])
    assert merge.files == ("a.pkl", "b.pkl") and merge.out == "m"
    assert script.parse_args(["validate", "s.pkl", "--format", "v2"]).file == "s.pkl"
    with pytest.raises(ConfigError, match="missing required key.*repo_url"):
        script.parse_args(["write", "--method", "M", "--out", "o"])
    with pytest.raises(ConfigError, match="'planner' must be one of"):
        script.parse_args(["write", "--planner", "oracle"])
    with pytest.raises(SystemExit) as done:
        script.parse_args(["write", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "  method (str, required) = ''" in text and "  omega (float, finite) = 1.0  guidance strength" in text


def test_every_model_free_baseline_can_write_a_submission():
    """The planner names the submission config accepts are the model-free baselines (one table) plus the model."""
    from typing import get_args, get_type_hints

    from navsim_eval.evaluation.planners import MODEL_FREE_PLANNERS
    from navsim_eval.submission.config import WriteConfig

    accepted = set(get_args(get_type_hints(WriteConfig)["planner"]))
    assert accepted == set(MODEL_FREE_PLANNERS) | {"dipole"}
