"""Checks shared by the tests of the auxiliary heads (the BEV decoder and the scene-plan probe)."""

from __future__ import annotations

import torch

from vla import DipoleVLA


def check_auxiliary_loss(model: DipoleVLA, batch: dict, head_name: str, loss_name: str, weight_name: str,
                         tmp_path) -> DipoleVLA:
    """``loss_il`` with the head's weight adds weight x the head's loss, which trains the head and the vision tower;
    the head is frozen outside the ``base`` scope and round-trips through save/load. Returns the reloaded model."""
    head = getattr(model, head_name)
    torch.manual_seed(0)
    plain = model.loss_il(batch)
    torch.manual_seed(0)
    total = model.loss_il(batch, **{weight_name: 0.5})
    assert torch.allclose(total, plain + 0.5 * getattr(model, loss_name)(batch, model.encode(batch)))
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    vision = [p for n, p in model.backbone.named_parameters() if "vision" in n and p.requires_grad]
    assert vision and any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision)
    model.set_trainable("adapters")
    assert not any(p.requires_grad for p in head.parameters())
    model.save_pretrained(tmp_path / "m")
    loaded = DipoleVLA.from_pretrained(str(tmp_path / "m"))
    for (name, value), (_, other) in zip(head.state_dict().items(), getattr(loaded, head_name).state_dict().items()):
        assert torch.equal(value, other), name
    return loaded
