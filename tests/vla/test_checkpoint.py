"""save_pretrained / from_pretrained: one self-contained directory, bit-exact round trip, loud errors."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel, Florence2Config, Florence2ForConditionalGeneration

from vla import CheckpointError, DipoleProcessor, DipoleVLA
from vla.backbones.hf_vlm import config_from_dict
from vla.presets import TINY_PRESETS, build_config, preset_dict

from vla.testing import make_agent_input, make_target_poses, perturb, tiny_model


@pytest.fixture(scope="module")
def agent_inputs():
    rng = np.random.default_rng(3)
    return [make_agent_input(rng, speed=3.0), make_agent_input(rng, speed=8.0, command=0)]


def sample_twice(model, batch, **kwargs):
    return model.sample(batch, num_steps=3, num_samples=2, generator=torch.Generator().manual_seed(42), **kwargs)


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_round_trip_is_bit_exact(preset, agent_inputs, tmp_path):
    torch.set_num_threads(1)
    model = tiny_model(preset)
    perturb(model.head, seed=4)  # distinct, non-zero adapters
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert any(".positive." in k for k in keys) and any(".negative." in k for k in keys)

    loaded = DipoleVLA.from_pretrained(tmp_path)
    auto = AutoModel.from_pretrained(tmp_path)
    assert type(auto) is DipoleVLA
    assert loaded.config.normalization == model.config.normalization
    original_state = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, original_state[name]), name
    saved, restored = dict(model.named_buffers()), dict(loaded.named_buffers())  # unsaved ones too
    assert saved.keys() == restored.keys()
    for name, buffer in saved.items():
        assert torch.equal(restored[name], buffer), name
    batch = model.processor(agent_inputs)
    batch_loaded = DipoleProcessor.from_pretrained(tmp_path)(agent_inputs)
    for key in batch:
        assert torch.equal(batch[key], batch_loaded[key]), key
    for kwargs in ({"omega": 0.5}, {"omega": -1.0}, {"mode": "base"}):
        expected = sample_twice(model, batch, **kwargs)
        assert torch.equal(sample_twice(loaded, batch_loaded, **kwargs), expected), kwargs
        assert torch.equal(sample_twice(auto, batch_loaded, **kwargs), expected), kwargs


def test_a_loaded_lookup_head_reads_the_grid_where_the_saved_one_did(agent_inputs, tmp_path):
    """from_pretrained builds the model without running its initialisers: nothing the reader uses may be
    left to them (a buffer left out of the checkpoint came back as uninitialised memory)."""
    torch.set_num_threads(1)
    model = tiny_model("tiny-florence2", overrides=["bev.cells=4", "bev.head_lookup=true"]).eval()
    with torch.no_grad():
        model.head.grid_reader.embed.weight.normal_()
    model.save_pretrained(tmp_path / "m")
    loaded = DipoleVLA.from_pretrained(str(tmp_path / "m")).eval()
    batch = model.processor(agent_inputs)
    grid = model._head_grid(model.encode(batch))
    poses = torch.randn(len(agent_inputs) * 3, 8, 4, generator=torch.Generator().manual_seed(0))
    read = loaded.head.grid_reader.read(poses, grid)
    assert torch.equal(read, model.head.grid_reader.read(poses, grid)) and read.abs().sum() > 0


def test_save_accepts_an_external_state_dict(tmp_path):
    model = tiny_model("tiny-timm-lm")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    key = next(k for k in state if ".positive." in k and "lora_B" in k)
    expected = torch.full_like(state[key], 0.25)
    state[key] = expected.clone()
    model.save_pretrained(tmp_path, state_dict=state)  # transformers may consume the dict it is given
    loaded = DipoleVLA.from_pretrained(tmp_path)
    assert torch.equal(loaded.state_dict()[key], expected)


def save_tiny_backbone(preset: str, directory):
    """Save the preset's backbone (or its LM) as a standalone HF checkpoint, as a downloaded one would be."""
    settings = preset_dict(preset)["backbone"]
    torch.manual_seed(9)
    if settings["type"] == "florence2":
        hf_model = Florence2ForConditionalGeneration(Florence2Config.from_dict(settings["model_config"]))
    else:
        hf_model = AutoModel.from_config(config_from_dict(settings["model_config"]))
    hf_model.save_pretrained(directory)
    return hf_model


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_backbone_loads_from_a_local_path(preset, tmp_path, agent_inputs):
    hf_model = save_tiny_backbone(preset, tmp_path / "backbone")
    config = build_config(preset, overrides=[f"backbone.pretrained={tmp_path / 'backbone'}",
                                             "backbone.model_config=null"])
    model = DipoleVLA.from_backbone_pretrained(config)
    assert model.config.backbone["model_config"] is not None  # resolved for a download-free reload
    source = {k.removeprefix("model."): v for k, v in hf_model.state_dict().items()}
    inner = model.backbone.lm if preset == "tiny-timm-lm" else model.backbone.model
    compared = 0
    for name, tensor in inner.state_dict().items():
        if name in source:
            assert torch.equal(tensor, source[name]), name
            compared += 1
    assert compared > 0.9 * len(inner.state_dict())
    rng = np.random.default_rng(0)
    model.set_normalization_stats(__import__("vla").compute_normalization_stats(make_target_poses(rng, 16)))
    model.save_pretrained(tmp_path / "dipole")
    reloaded = DipoleVLA.from_pretrained(tmp_path / "dipole")
    batch = model.processor(agent_inputs)
    assert torch.equal(sample_twice(reloaded, batch, omega=0.5), sample_twice(model, batch, omega=0.5))


@pytest.fixture()
def saved_dir(tmp_path):
    model = tiny_model("tiny-florence2")
    model.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer.json"])
def test_missing_files_are_named(saved_dir, missing):
    (saved_dir / missing).unlink()
    with pytest.raises(CheckpointError, match=missing.replace(".", r"\.")):
        DipoleVLA.from_pretrained(saved_dir)


def edit_config(directory, edit):
    path = directory / "config.json"
    values = json.loads(path.read_text())
    edit(values)
    path.write_text(json.dumps(values))


def test_mismatched_config_is_reported(saved_dir):
    edit_config(saved_dir, lambda v: v["head"].update(hidden_size=32, num_heads=4))
    with pytest.raises(CheckpointError, match="config.json"):
        DipoleVLA.from_pretrained(saved_dir)


def test_fewer_blocks_in_config_than_weights_is_reported(saved_dir):
    edit_config(saved_dir, lambda v: v["head"].update(depth=1))
    with pytest.raises(CheckpointError, match="unexpected keys"):
        DipoleVLA.from_pretrained(saved_dir)


def test_unknown_config_field_is_named(saved_dir):
    edit_config(saved_dir, lambda v: v["lora"].update(rnak=8))
    with pytest.raises(CheckpointError, match="lora.rnak"):
        DipoleVLA.from_pretrained(saved_dir)


def _floating_parameter_dtypes(model):
    return {p.dtype for p in model.parameters() if p.is_floating_point()}


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_bfloat16_checkpoint_reloads_in_one_dtype_and_samples(preset, agent_inputs, tmp_path):
    """Stored dtype = the saved model's; from_pretrained gives one parameter dtype (stored or requested)."""
    torch.set_num_threads(1)
    model = tiny_model(preset)
    perturb(model.head, seed=5)
    model.to(torch.bfloat16).save_pretrained(tmp_path)
    batch = model.processor(agent_inputs)
    for kwargs, expected in (({}, torch.bfloat16), ({"dtype": "bfloat16"}, torch.bfloat16),
                             ({"torch_dtype": torch.float32}, torch.float32), ({"dtype": "float32"}, torch.float32)):
        loaded = DipoleVLA.from_pretrained(tmp_path, **kwargs)
        assert _floating_parameter_dtypes(loaded) == {expected}, kwargs
        assert loaded.dtype == expected
        for module in loaded.modules():  # never-stored buffers (rotary frequencies) keep float32 precision
            for name, buffer in module.named_buffers(recurse=False):
                if buffer.is_floating_point() and name in module._non_persistent_buffers_set:
                    assert buffer.dtype == torch.float32, name
        poses = sample_twice(loaded, batch, omega=0.5)
        assert poses.dtype == torch.float32 and torch.isfinite(poses).all(), kwargs
        assert torch.isfinite(loaded.loss_il({**batch, "target_poses": torch.zeros(2, 8, 3)}))
    with pytest.raises(CheckpointError, match="dtype"):
        DipoleVLA.from_pretrained(tmp_path, dtype="int8")


def test_push_to_hub_uploads_a_complete_loadable_checkpoint(tmp_path, monkeypatch):
    """The upload sees every file (tokenizer included); a fake hub API records it, no network."""
    import shutil

    import huggingface_hub

    uploads = []

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        snapshot = tmp_path / "hub" / repo_id
        shutil.copytree(folder_path, snapshot)
        uploads.append(snapshot)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload_folder)
    model = tiny_model("tiny-timm-lm")
    model.save_pretrained(tmp_path / "local", push_to_hub=True, repo_id="someone/dipole-tiny")
    assert len(uploads) == 1
    DipoleVLA.from_pretrained(uploads[0])  # config, weights and tokenizer were all there at upload time
    card = (uploads[0] / "README.md").read_text()
    assert "tiny-timm-lm" in card and "launch/evaluate.py" in card and "LoRA rank 4" in card


def test_auto_processor_returns_the_dipole_processor(agent_inputs, tmp_path):
    from transformers import AutoProcessor

    model = tiny_model("tiny-timm-lm")
    model.save_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(processor) is DipoleProcessor
    expected = model.processor(agent_inputs)
    for key, value in processor(agent_inputs).items():
        assert torch.equal(value, expected[key]), key


def test_each_adapter_exports_in_peft_format_and_loads_with_peft_model(tmp_path):
    from peft import PeftModel

    from vla.dit import DiTDenoiser

    model = tiny_model("tiny-timm-lm")
    perturb(model.head, seed=6)
    settings = model.config.head_settings
    for adapter in ("positive", "negative"):
        directory = model.export_adapter(adapter, tmp_path / adapter)
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in directory.iterdir()}
        plain = DiTDenoiser(settings, model.backbone.hidden_size, model.config.proprio_dim, 8, 4)
        plain.load_state_dict({k.replace(".base_layer.", "."): v for k, v in model.head.state_dict().items()
                               if "lora_" not in k})
        loaded = PeftModel.from_pretrained(plain, directory)
        ours = model.adapter_parameters(adapter)
        theirs = {n: p for n, p in loaded.named_parameters() if "lora_" in n}
        assert len(theirs) == len(ours) > 0
        for name, value in ours.items():
            assert torch.equal(theirs[f"base_model.model.{name.replace(adapter, 'default')}"], value), name


def test_merged_single_branch_export_is_exact_at_omega_zero_and_refused_elsewhere(agent_inputs, tmp_path):
    from vla import ModelConfigError, VLAInputError

    torch.set_num_threads(1)
    model = tiny_model("tiny-timm-lm", overrides=["backbone.lora_rank=2"]).eval()  # the backbone LoRA stays
    perturb(model.head, seed=4)  # non-zero adapters: the merge must change the head
    batch = model.processor(agent_inputs)
    expected = sample_twice(model, batch, omega=0.0)
    assert not torch.allclose(expected, sample_twice(model, batch, mode="base"), atol=1e-4)

    directory = model.export_merged(tmp_path / "merged")
    merged = DipoleVLA.from_pretrained(directory)
    assert not merged.has_branches and merged.config.lora_settings.rank == 0
    assert not any("lora_" in name for name in merged.head.state_dict())
    assert any("lora_" in name for name in merged.backbone.state_dict())
    assert sum(p.numel() for p in merged.parameters()) == sum(
        p.numel() for n, p in model.named_parameters() if not (n.startswith("head.") and "lora_" in n))
    for kwargs in ({"omega": 0.0}, {"mode": "base"}):
        torch.testing.assert_close(sample_twice(merged, batch, **kwargs), expected, rtol=1e-5, atol=1e-5)

    for omega in (0.5, 1.0, -1.0):
        with pytest.raises(VLAInputError, match="exact only at omega = 0"):
            model.export_merged(tmp_path / f"omega{omega}", omega=omega)
    assert not (tmp_path / "omega0.5").exists()
    with pytest.raises(VLAInputError, match="omega = 0 only"):
        merged.sample(batch, omega=1.0)
    with pytest.raises(ModelConfigError, match="single-branch"):
        merged.set_trainable("adapters")
    with pytest.raises(ModelConfigError, match="single-branch"):
        merged.export_adapter("positive", tmp_path / "adapter")
