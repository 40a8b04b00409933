"""launch/finetune.py: DeepSpeed ZeRO-2 / ZeRO-3 launches on CPU, and bad input rejected before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from data_pipelines.configuration import ConfigError
from vla import DipoleVLA, DipoleVLAConfig
from vla.training.errors import IncompatibleCheckpointError, TrainingError

from tests.scripts import load_script
from tests.vla.training.helpers import generate_tiny_world

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "launch" / "finetune.py"
LAUNCH_TIMEOUT_S = int(os.environ.get("DIPOLE_LAUNCH_TIMEOUT_S", "1500"))
"""Per launch: two DeepSpeed processes took over 300 s on a 2-core machine at load 5-7 (observed); the limit
only catches hangs. Override with DIPOLE_LAUNCH_TIMEOUT_S."""
OP_BUILD_TIMEOUT_S = int(os.environ.get("DIPOLE_OP_BUILD_TIMEOUT_S", "1800"))
"""DeepSpeed compiles its shared-memory communication op on first use (14 min observed on a loaded 2-core
machine); built once per environment (``TORCH_EXTENSIONS_DIR``, which .ci/run keeps with the cached venv)."""
QUIET = ["tensorboard=false", "progress_bars=false", "reward.num_workers=0"]


def _finetune_module():
    return load_script("launch/finetune.py")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_tiny_world(tmp_path_factory.mktemp("tiny_world"))


@pytest.fixture(scope="module")
def deepspeed_ops():
    """Build (or find built) DeepSpeed's JIT op once, before the launches, so that two ranks do not build it
    concurrently inside their launch timeout."""
    code = "from deepspeed.comm.torch import build_shm_op; build_shm_op()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=OP_BUILD_TIMEOUT_S)
    assert proc.returncode == 0, "building DeepSpeed's shm op failed:\n" + proc.stderr[-5000:]


def _accelerate_launch(accelerate_config: str, args: list[str], num_processes: int = 2):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO_ROOT / "configs" / "accelerate" / accelerate_config), "--num_processes", str(num_processes),
           "--mixed_precision", "no", "--main_process_port", "0", str(SCRIPT)] + args
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def test_deepspeed_zero2_two_processes_two_steps(world, deepspeed_ops, tmp_path):
    out = tmp_path / "zero2"
    stdout = _accelerate_launch("deepspeed_zero2.yaml", [
        f"data.data_root={world}", f"output_dir={out}", "stages=[il]", "il.steps=2", "il.batch_size=2",
        "eval.enabled=false", "data.max_train_scenes=8"] + QUIET)
    assert "[setup] 2 process(es), DistributedType.DEEPSPEED ZeRO-2" in stdout
    assert "[il] step 2/2" in stdout
    model = DipoleVLA.from_pretrained(out / "model")
    assert model.config.normalization is not None
    ckpts = sorted((out / "checkpoints").glob("ckpt-*"))
    assert ckpts and (ckpts[-1] / "COMPLETE").is_file()


def test_deepspeed_zero3_with_bc_anchor_gathers_adapters_before_saving(world, deepspeed_ops, tmp_path):
    out = tmp_path / "zero3"
    stdout = _accelerate_launch("deepspeed_zero3.yaml", [
        f"data.data_root={world}", f"output_dir={out}", "stages=[il,dipole]", "il.steps=3", "il.batch_size=2",
        "dipole.rounds=1", "dipole.steps_per_round=1", "dipole.batch_size=2", "dipole.rollout.num_candidates=4",
        "dipole.rollout.num_steps=3", "dipole.optim.warmup_steps=0", "data.max_train_scenes=8",
        "dipole.bc_weight=0.5", "eval.enabled=false"] + QUIET)
    assert "ZeRO-3" in stdout and "[dipole] round 0 rollouts" in stdout
    step_line = next(line for line in stdout.splitlines() if line.startswith("[dipole] round 0 step 1/1"))
    loss_bc = float(step_line.split("loss_bc ")[1].split()[0])
    assert loss_bc > 0  # the BC anchor took part in the ZeRO-3 forward and backward
    weights = load_file(out / "model" / "model.safetensors")
    lora = {k: v for k, v in weights.items() if ".lora_" in k}
    assert lora and all(v.numel() > 0 for v in lora.values())
    for adapter in ("positive", "negative"):
        b = [v for k, v in lora.items() if f"lora_B.{adapter}." in k]
        assert b and any(float(v.abs().sum()) > 0 for v in b), f"adapter {adapter} saved empty/zero"
    DipoleVLA.from_pretrained(out / "model")


def test_bad_input_fails_before_work(world, tmp_path):
    finetune = _finetune_module()
    with pytest.raises(ConfigError, match="'dipole.rollout.k'"):
        finetune.main(["dipole.rollout.k=3"])
    with pytest.raises(TrainingError, match="navsim_logs"):
        finetune.main([f"data.data_root={tmp_path / 'nowhere'}", "data.generate_synthetic=false",
                       f"output_dir={tmp_path / 'o1'}"] + QUIET)
    from data_pipelines.errors import DataError

    with pytest.raises(DataError):
        finetune.main([f"data.data_root={world}", "data.train_split=no_such_split", f"output_dir={tmp_path / 'o2'}"]
                      + QUIET)
    with pytest.raises(DataError):  # a split with no scenes
        finetune.main([f"data.data_root={world}", "data.max_train_scenes=0", f"output_dir={tmp_path / 'o3'}"]
                      + QUIET)


def test_an_existing_world_generated_with_other_settings_is_named(world, capsys):
    from types import SimpleNamespace

    finetune = _finetune_module()
    main_process = SimpleNamespace(is_local_main_process=True)
    for overrides, note in ((["data.synthetic_preset=tiny"], False),
                            (["data.synthetic_preset=tiny", "data.synthetic_overrides=[seed=3]"], True),
                            (["data.synthetic_preset=tiny", "data.generate_synthetic=false"], False)):
        cfg, _ = finetune.parse_args([f"data.data_root={world}"] + overrides)
        finetune.resolve_data(cfg, main_process)
        out = capsys.readouterr().out
        assert ("other settings (seed: 0 here, 3 in 'tiny')" in out) is note, (overrides, out)
    assert (world / "navsim_logs").is_dir()  # used as it is, never regenerated


def test_a_missing_train_camera_image_fails_before_training(world, tmp_path):
    import shutil

    from data_pipelines.errors import SensorFileError

    copy = tmp_path / "world"
    shutil.copytree(world, copy)
    for folder in (copy / "sensor_blobs" / "synthetic_trainval").glob("*/CAM_L0"):
        shutil.rmtree(folder)
    out = tmp_path / "run"
    with pytest.raises(SensorFileError, match="CAM_L0"):
        _finetune_module().main([f"data.data_root={copy}", f"output_dir={out}", "stages=[il]", "il.steps=2",
                                 "eval.enabled=false", "data.generate_synthetic=false"] + QUIET)
    assert not (out / "train_config.yaml").exists()  # it failed while loading the split, before the trainer started


def test_resume_with_incompatible_config_fails_before_work(world, tmp_path):
    finetune = _finetune_module()
    out = tmp_path / "run"
    common = [f"data.data_root={world}", f"output_dir={out}", "stages=[il]", "il.steps=2", "il.batch_size=2",
              "eval.enabled=false", "data.max_train_scenes=6"] + QUIET
    torch.set_num_threads(1)
    finetune.main(common + ["stop_after_steps=1"])
    with pytest.raises(IncompatibleCheckpointError, match="model"):
        finetune.main(["--resume"] + common + ["model.overrides.head.depth=1"])
    finetune.main(["--resume"] + common)
    assert (out / "model" / "model.safetensors").is_file()


def test_without_config_the_demo_preset_runs_and_presets_resolve_by_name():
    from data_pipelines.configuration import load_config
    from vla.training import TrainConfig

    finetune = _finetune_module()
    presets = REPO_ROOT / "configs" / "train"
    assert finetune.parse_args([])[0] == load_config(TrainConfig, presets / "demo.yaml")
    assert finetune.parse_args(["--config", "demo_ewr"])[0] == load_config(TrainConfig, presets / "demo_ewr.yaml")
    with pytest.raises(ConfigError, match="'no_such_preset'.*demo_bev"):
        finetune.parse_args(["--config", "no_such_preset"])


def test_flags_and_overrides_mix_in_any_order():
    finetune = _finetune_module()
    cfg, resume = finetune.parse_args(["il.steps=1", "--resume", "dipole.rounds=2"])
    assert resume and cfg.il.steps == 1 and cfg.dipole.rounds == 2
    assert finetune.parse_args(["--resume"])[1] and not finetune.parse_args(["il.steps=1"])[1]
    with pytest.raises(ConfigError, match="'--resum' is neither a flag"):
        finetune.parse_args(["--resum"])


@pytest.mark.parametrize("override, key", [
    ("il.steps=-5", "il.steps"), ("dipole.rounds=-2", "dipole.rounds"), ("il.batch_size=0", "il.batch_size"),
    ("checkpoint_every=0", "checkpoint_every"), ("il.optim.lr=-1e-3", "il.optim.lr"),
    ("dipole.optim.lr=nan", "dipole.optim.lr"), ("dipole.rollout.batch_size=0", "dipole.rollout.batch_size"),
])
def test_out_of_range_values_fail_when_the_config_loads(override, key):
    with pytest.raises(ConfigError) as err:
        _finetune_module().main([override])
    assert err.value.key == key and repr(key) in str(err.value)


def test_training_results_table_equals_evaluate_py_table(world, tmp_path):
    """Same checkpoint, split, omegas and seed: training's results.md is evaluate.py's summary.md."""
    finetune = _finetune_module()
    out = tmp_path / "run"
    torch.set_num_threads(1)
    finetune.main([
        f"data.data_root={world}", f"output_dir={out}", "stages=[il,dipole]", "il.steps=2", "il.batch_size=2",
        "dipole.rounds=1", "dipole.steps_per_round=1", "dipole.batch_size=2", "dipole.rollout.num_candidates=2",
        "dipole.rollout.num_steps=2", "dipole.optim.warmup_steps=0", "data.max_train_scenes=2",
        "data.max_eval_scenes=3", "eval.omegas=[0.0,1.0]", "eval.num_steps=2", "eval.batch_size=2", "eval.seed=7",
    ] + QUIET)
    training_table = (out / "results.md").read_text()
    assert "| dipole (w=1) |" in training_table and "| il |" in training_table
    rows = [line for line in training_table.splitlines() if line.startswith(("| dipole", "| il"))]
    assert len(rows) == 3 and all(line.endswith("| 3 | 0 |") for line in rows)  # 3 scenes scored, none failed
    evaluate = load_script("launch/evaluate.py")
    evaluate.main([
        "--checkpoint", str(out / "model"), "--split", "synthetic_test", "--data-root", str(world),
        "--omegas", "0,1", "--num-steps", "2", "--seeds", "7", "--metrics", "v1", "--baselines", "il",
        "--batch-size", "2", "--max-scenes", "3", "--two-stage", "off", "--report-worst", "0",
        "--report-sample", "0", "--output-dir", str(tmp_path / "evaluation"), "--no-progress",
    ])
    assert (tmp_path / "evaluation" / "summary.md").read_text() == training_table


def test_imitation_with_the_scene_plan_probe_needs_both_the_probe_and_a_weight(world, tmp_path):
    finetune = _finetune_module()
    base = [f"data.data_root={world}", "stages=[il]", "il.steps=2", "il.batch_size=4", "eval.enabled=false",
            "data.num_workers=1"] + QUIET
    with pytest.raises(TrainingError, match="scene_plan_loss_weight"):
        finetune.main(base + [f"output_dir={tmp_path / 'weight_only'}", "il.scene_plan_loss_weight=0.1"])
    with pytest.raises(TrainingError, match="scene_plan_loss_weight"):
        finetune.main(base + [f"output_dir={tmp_path / 'probe_only'}", "model.overrides.scene_plan.hidden_size=16"])
    out = tmp_path / "both"
    assert finetune.main(base + [f"output_dir={out}", "il.scene_plan_loss_weight=0.1",
                                 "model.overrides.scene_plan={hidden_size: 16, baseline: constant_turn_rate}"]) == 0
    weights = load_file(str(out / "il_model" / "model.safetensors"))
    probe = [value for name, value in weights.items() if name.startswith("scene_plan_probe.")]
    assert probe and DipoleVLAConfig.from_pretrained(str(out / "il_model")).scene_plan_settings.hidden_size == 16


def test_imitation_with_the_bev_decoder_needs_both_the_decoder_and_a_weight(world, tmp_path):
    finetune = _finetune_module()
    base = [f"data.data_root={world}", "stages=[il]", "il.steps=2", "il.batch_size=4", "eval.enabled=false",
            "data.num_workers=1"] + QUIET
    with pytest.raises(TrainingError, match="bev_loss_weight"):  # the demo has both: drop its model overrides
        finetune.main(base + [f"output_dir={tmp_path / 'weight_only'}", "il.bev_loss_weight=1.0", "model.overrides={}"])
    with pytest.raises(TrainingError, match="bev_loss_weight"):
        finetune.main(base + [f"output_dir={tmp_path / 'decoder_only'}", "model.overrides.bev.cells=4",
                              "il.bev_loss_weight=0"])
    out = tmp_path / "both"
    assert finetune.main(base + [f"output_dir={out}", "il.bev_loss_weight=1.0", "model.overrides.bev.cells=4",
                                 "model.overrides.bev.head_lookup=true"]) == 0
    weights = load_file(str(out / "il_model" / "model.safetensors"))
    assert any(name.startswith("bev_decoder.") for name in weights)
    reader = [value for name, value in weights.items() if "grid_reader.embed.weight" in name]
    assert len(reader) == 1 and reader[0].abs().sum() > 0  # imitation trained the head's grid lookup
