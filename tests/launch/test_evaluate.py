"""launch/evaluate.py end to end on a tiny synthetic world with a tiny checkpoint (one command)."""

from __future__ import annotations


import pytest
import torch

from navsim_eval.evaluation import read_rows
from tests.launch.conftest import load_launch_script

@pytest.fixture()
def env(world, monkeypatch):
    monkeypatch.setenv("OPENSCENE_DATA_ROOT", str(world))
    monkeypatch.delenv("NUPLAN_MAPS_ROOT", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return world


def test_one_command_writes_csv_tables_two_stage_and_pngs(env, checkpoint, tmp_path, capsys):
    evaluate = load_launch_script("evaluate")
    out = tmp_path / "eval"
    args = ["--checkpoint", str(checkpoint), "--omegas", "0,1", "--num-steps", "1", "--metrics", "v1,v2",
            "--baselines", "constant_velocity,human,il", "--max-scenes", "3", "--batch-size", "2",
            "--report-worst", "1", "--report-sample", "1", "--output-dir", str(out), "--no-progress"]
    assert evaluate.main(args) == 0
    printed = capsys.readouterr().out
    assert "| Method | NC | DAC | TTC | C | EP | PDMS |" in printed
    assert "| Method | NC | DAC | DDC | TLC | EP | TTC | LK | HC | EC | EPDMS |" in printed
    assert "Two-stage EPDMS" in printed

    rows = read_rows(out / "results.csv")
    stage_one = [r for r in rows if r["stage"] == 1]
    stage_two = [r for r in rows if r["stage"] == 2]
    planners = {(r["planner"], r["omega"]) for r in stage_one}
    assert planners == {("dipole", 0.0), ("dipole", 1.0), ("il", None), ("constant_velocity", None), ("human", None)}
    assert len({r["token"] for r in stage_one}) == 3
    assert len(stage_one) == 3 * 5 * 2 and not any(r["error"] for r in rows), [r["error"] for r in rows if r["error"]]
    assert stage_two and all(len(r["token"]) == 17 for r in stage_two)
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    assert (out / "summary.md").read_text().count("| Method |") >= 4
    assert (out / "two_stage.csv").exists()
    pngs = sorted(p.name for p in (out / "report").rglob("*.png"))
    assert "omega_sweep_v1.png" in pngs and "omega_sweep_v2.png" in pngs
    assert len([p for p in pngs if p.startswith(("worst_", "sample_"))]) == 2

    # a rerun resumes: every key is already scored, nothing is recomputed, results unchanged
    before = (out / "results.csv").read_text()
    assert evaluate.main(args) == 0
    assert (out / "results.csv").read_text() == before


@pytest.mark.parametrize("dtype", ["auto", "float32"])
def test_bfloat16_checkpoint_evaluates_without_failed_rows(env, bf16_checkpoint, tmp_path, dtype):
    evaluate = load_launch_script("evaluate")
    out = tmp_path / "eval"
    torch.set_num_threads(2)
    assert evaluate.main(["--checkpoint", str(bf16_checkpoint), "--dtype", dtype, "--omegas", "0,1", "--num-steps",
                          "1", "--metrics", "v1", "--baselines", "il", "--max-scenes", "2", "--two-stage", "off",
                          "--report-worst", "0", "--report-sample", "0", "--output-dir", str(out),
                          "--cpu-threads", "1", "--no-progress"]) == 0
    assert torch.get_num_threads() == 1  # the model process's threads come from cpu_threads
    rows = read_rows(out / "results.csv")
    assert {r["planner"] for r in rows} == {"dipole", "il"} and len(rows) == 2 * 3
    assert not any(r["error"] for r in rows), [r["error"] for r in rows if r["error"]]


def test_unknown_split_is_a_clear_error(env, tmp_path):
    evaluate = load_launch_script("evaluate")
    with pytest.raises(Exception, match="no_such_split"):
        evaluate.main(["--split", "no_such_split", "--baselines", "constant_velocity",
                       "--output-dir", str(tmp_path), "--no-progress"])


def test_flags_and_key_value_are_one_grammar_and_help_lists_every_key(capsys):
    import dataclasses

    from data_pipelines.configuration import ConfigError
    from navsim_eval.evaluation import EvaluationConfig

    evaluate = load_launch_script("evaluate")
    as_flags = evaluate.parse_args(["--checkpoint", "ckpt", "--omegas", "0,1", "--baselines", "", "--no-progress",
                                    "--max-scenes=3", "--two-stage", "off"])
    as_keys = evaluate.parse_args(["checkpoint=ckpt", "omegas=[0,1]", "baselines=[]", "progress=false",
                                   "max_scenes=3", "two_stage=off"])
    assert as_flags == as_keys
    assert as_keys.omegas == (0.0, 1.0) and as_keys.baselines == () and as_keys.progress is False
    with pytest.raises(ConfigError, match="'num_samples' must be >= 1"):
        evaluate.parse_args(["num_samples=0"])
    with pytest.raises(ConfigError, match="'two_stage' must be one of"):
        evaluate.parse_args(["--two-stage", "maybe"])
    with pytest.raises(SystemExit) as done:
        evaluate.parse_args(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for f in dataclasses.fields(EvaluationConfig):
        line = next(line for line in text.splitlines() if line.startswith(f"  {f.name} ("))
        assert ") = " in line and len(line.split(") = ", 1)[1].split("  ", 1)) == 2, line  # default and help


def test_missing_checkpoint_folder_is_a_local_error(tmp_path, monkeypatch):
    from vla.errors import CheckpointError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    evaluate = load_launch_script("evaluate")
    with pytest.raises(CheckpointError, match="not found"):
        evaluate.main(["--checkpoint", "outputs/no_such_run/model", "--baselines", "", "--no-progress"])
