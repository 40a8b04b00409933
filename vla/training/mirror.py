"""Mirror augmentation for imitation: every training scene also reflected left to right about the ego's x axis.

A mirrored scene is the same drive in a world reflected left to right. Lateral positions, headings and lateral
velocity and acceleration change sign, the left and right driving commands swap, lidar points move to -y, and
every camera image is flipped horizontally and shown in its mirror-image camera's place (CAM_L0 <-> CAM_R0 ...,
with that camera's own calibration: the synthetic rig's left and right cameras mirror each other's mounts; for a
real rig it is an approximation as far as they differ). The auxiliary BEV decoder's target (rows along x,
columns along y, centred on y = 0) reverses its columns. The side of the road the traffic keeps to changes too,
so the augmentation is opt-in (``il.mirror_augmentation``). Turns at junctions are not symmetric under that rule
(a left turn crosses the oncoming lanes on a wide arc, a right turn takes the near corner), so ``no_turn`` mirrors
only the scenes whose driving command does not turn.
"""

from __future__ import annotations

from dataclasses import fields, replace
from functools import cached_property
from typing import Any, Optional, Sequence

import numpy as np
import torch

from data_pipelines.types import DRIVING_COMMANDS, AgentInput, Cameras, EgoStatus, Lidar
from vla.modeling_dipole import BEV_TARGET_KEY
from vla.training.data import item_ego_inputs, item_targets, item_tokens

MIRROR_TOKEN_SUFFIX = "~mirrored"
"""Appended to a scene token to name its mirrored copy (OpenScene tokens are hexadecimal, so it never clashes)."""

LIDAR_Y_ROW = 1  # row of y in a (6, n) OpenScene point cloud (x, y, z, intensity, ring, lidar_id)


def _mirror_camera_field(name: str) -> str:
    side = name[len("cam_")]
    return name if side not in "lr" else f"cam_{'r' if side == 'l' else 'l'}{name[len('cam_') + 1:]}"


MIRROR_CAMERA = {f.name: _mirror_camera_field(f.name) for f in fields(Cameras)}
"""Camera field -> the camera whose flipped image it shows in a mirrored scene (cam_l0 -> cam_r0, cam_f0 -> cam_f0)."""

_OTHER_SIDE = {"left": "right", "right": "left"}
MIRROR_COMMAND = np.array([DRIVING_COMMANDS.index(_OTHER_SIDE.get(c, c)) for c in DRIVING_COMMANDS])
"""Index permutation of a one-hot driving command that swaps left and right."""


def mirror_poses(poses: np.ndarray) -> np.ndarray:
    """(..., 3) x, y, heading reflected about the x axis: y and heading change sign."""
    out = np.array(poses, copy=True)
    out[..., 1:3] *= -1
    return out


def mirror_ego_status(status: EgoStatus) -> EgoStatus:
    """The ego status of the mirrored scene (pose, lateral velocity and acceleration, left/right command)."""
    flip_lateral = np.array([1.0, -1.0])
    return replace(status, ego_pose=mirror_poses(status.ego_pose),
                   ego_velocity=np.asarray(status.ego_velocity) * flip_lateral,
                   ego_acceleration=np.asarray(status.ego_acceleration) * flip_lateral,
                   driving_command=np.asarray(status.driving_command)[MIRROR_COMMAND])


def mirror_cameras(cameras: Cameras) -> Cameras:
    """Each camera shows its mirror-image camera's image, flipped horizontally (calibration stays its own)."""
    out = {}
    for name, source_name in MIRROR_CAMERA.items():
        camera, source = getattr(cameras, name), getattr(cameras, source_name)
        image = None if source.image is None else np.ascontiguousarray(source.image[:, ::-1])
        out[name] = replace(camera, image=image, camera_path=source.camera_path)
    return Cameras(**out)


def mirror_lidar(lidar: Lidar) -> Lidar:
    if lidar.lidar_pc is None:
        return lidar
    points = np.array(lidar.lidar_pc, copy=True)
    points[LIDAR_Y_ROW] *= -1
    return Lidar(points)


def mirror_agent_input(agent_input: AgentInput) -> AgentInput:
    """The AgentInput of the mirrored scene (every history frame)."""
    return AgentInput(ego_statuses=[mirror_ego_status(s) for s in agent_input.ego_statuses],
                      cameras=[mirror_cameras(c) for c in agent_input.cameras],
                      lidars=[mirror_lidar(lidar) for lidar in agent_input.lidars])


def mirror_item(item: dict) -> dict:
    """A training item (token, agent_input, target_poses [, bev_target]) of the mirrored scene."""
    out = dict(item, token=item["token"] + MIRROR_TOKEN_SUFFIX, agent_input=mirror_agent_input(item["agent_input"]),
               target_poses=mirror_poses(np.asarray(item["target_poses"], dtype=np.float32)))
    if BEV_TARGET_KEY in item:
        out[BEV_TARGET_KEY] = np.ascontiguousarray(np.asarray(item[BEV_TARGET_KEY])[..., ::-1])
    return out


class MirroredItems(torch.utils.data.Dataset):
    """The items of a scene dataset followed by mirrored copies of ``mirrored`` (item indices; None: all), so
    index n + j mirrors item ``mirrored[j]``.

    ``tokens``, ``target_poses(token)`` and ``ego_agent_input(token)`` cover both parts (mirrored tokens end
    with ``MIRROR_TOKEN_SUFFIX``); other attributes (``loader`` ...) are the dataset's, so batchers treat it as
    the dataset."""

    def __init__(self, items: Sequence[dict], mirrored: Optional[Sequence[int]] = None):
        self.items = items
        self.mirrored = np.arange(len(items)) if mirrored is None else np.asarray(mirrored, dtype=np.int64)
        if self.mirrored.size and (self.mirrored.min() < 0 or self.mirrored.max() >= len(items)):
            raise IndexError(f"mirrored scene indices must lie in [0, {len(items)}), got {self.mirrored.min()}.."
                             f"{self.mirrored.max()}")

    def __len__(self) -> int:
        return len(self.items) + len(self.mirrored)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("items", "mirrored"):
            raise AttributeError(name)  # pickling / half-built objects must not recurse into ``items``
        return getattr(self.items, name)

    @property
    def tokens(self) -> list[str]:
        tokens = item_tokens(self.items)
        return tokens + [tokens[i] + MIRROR_TOKEN_SUFFIX for i in self.mirrored]

    @staticmethod
    def _source(token: str) -> tuple[str, bool]:
        mirrored = token.endswith(MIRROR_TOKEN_SUFFIX)
        return (token[:-len(MIRROR_TOKEN_SUFFIX)] if mirrored else token), mirrored

    def target_poses(self, token: str) -> np.ndarray:
        source, mirrored = self._source(token)
        poses = self._source_targets[self._source_index[source]].copy()
        return mirror_poses(poses) if mirrored else poses

    def ego_agent_input(self, token: str) -> AgentInput:
        source, mirrored = self._source(token)
        agent_input = self._source_ego_inputs[self._source_index[source]]
        return mirror_agent_input(agent_input) if mirrored else agent_input

    @cached_property
    def _source_index(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(item_tokens(self.items))}

    @cached_property
    def _source_targets(self) -> np.ndarray:
        """(n, 8, 3) logged trajectories of the unmirrored items, read once without sensors."""
        return item_targets(self.items)

    @cached_property
    def _source_ego_inputs(self) -> list[AgentInput]:
        """Ego-status agent inputs of the unmirrored items, read once without sensors."""
        return item_ego_inputs(self.items)

    def __getitem__(self, index: int) -> dict:
        index, n = int(index), len(self.items)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items (mirrored included)")
        return self.items[index] if index < n else mirror_item(self.items[int(self.mirrored[index - n])])
