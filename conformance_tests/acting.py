"""Inputs of the acting-kind checks (estimators, rewards): the standard scene as an episode.

:func:`scene_observations` turns the standard scene (:func:`d2f_conformance.scenes.standard_scene`:
a textured box sliding +x on a table, 8 frames, exact depth and flow) into one
:class:`~d2f_core.Observation` per frame, so an estimator or a reward sees what a world would give
it: the calibrated RGB-D frame, the end-effector position ``state["ee_pos"]`` (fixed at
:data:`EE_POS`) and the privileged ``object_pose`` (T_world_box: rotation by the box's yaw about z,
origin at the centre of its bottom face on the table). The scene's flow is the box top face's true
motion, so frame ``t``'s true particles are ``scene.flow.points[t]``.
"""

from __future__ import annotations

import math

import numpy as np

from d2f_core import RGBD, Observation

from .scenes import BoxPose, ConformanceScene

__all__ = ["EE_POS", "box_pose_matrix", "scene_observations"]

EE_POS = (0.0, -0.1, 0.15)
"""End-effector position in every scene observation, metres, world frame (above and in front of the box)."""


def box_pose_matrix(pose: BoxPose) -> np.ndarray:
    """T_world_box (4x4): yaw about z, origin at (x, y, 0) (the bottom face's centre, on the table)."""
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return np.array([[c, -s, 0.0, pose.x], [s, c, 0.0, pose.y], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def scene_observations(scene: ConformanceScene) -> list[Observation]:
    """One Observation per frame of ``scene`` (see the module docstring)."""
    out = []
    for t, pose in enumerate(scene.poses):
        rgbd = RGBD(rgb=scene.video.frames[t], depth=scene.depth[t], camera=scene.camera)
        out.append(Observation(rgbd=rgbd, joints=np.array(EE_POS), state={"ee_pos": list(EE_POS), "t": t},
                               privileged={"object_pose": box_pose_matrix(pose).tolist(), "task": "conformance-box"}))
    return out
