"""MuJoCo camera <-> dream2flow :class:`~d2f_core.Camera` (OpenCV convention). Pure numpy.

MuJoCo cameras look along their local **-z** axis with **+y up** and +x right; the rendered image
is a symmetric perspective projection with vertical field of view ``fovy`` and square pixels.
OpenCV cameras (ours) look along **+z** with **+y down**, so

    R_world_cv = R_world_mj @ diag(1, -1, -1)

and, with the pixel-centre convention of :mod:`d2f_core.types` (pixel (0, 0) is the centre of
the top-left pixel),

    fx = fy = (H / 2) / tan(fovy / 2),   cx = (W - 1) / 2,   cy = (H - 1) / 2.

(``mujoco.Renderer`` returns images with row 0 at the top; robosuite's own ``sim.render`` returns
them bottom-up, which is why this package renders with ``mujoco.Renderer``.)
"""

from __future__ import annotations

import math

import numpy as np

from d2f_core import Camera
from d2f_core.geometry import matrix_from_quat, quat_from_matrix

__all__ = ["FLIP_YZ", "intrinsics", "camera_from_mujoco", "mujoco_pose_from_look_at", "quat_from_matrix",
           "matrix_from_quat"]

FLIP_YZ = np.diag([1.0, -1.0, -1.0])
"""Axis change between MuJoCo (x right, y up, -z forward) and OpenCV (x right, y down, z forward)."""


def intrinsics(width: int, height: int, fovy_deg: float) -> np.ndarray:
    """3x3 K of a MuJoCo camera with vertical field of view ``fovy_deg`` rendered at width x height."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def camera_from_mujoco(cam_xpos: np.ndarray, cam_xmat: np.ndarray, fovy_deg: float, width: int, height: int,
                       name: str = "camera") -> Camera:
    """Our Camera from a MuJoCo camera's world pose (``data.cam_xpos``, ``data.cam_xmat``) and fovy."""
    R_mj = np.asarray(cam_xmat, dtype=np.float64).reshape(3, 3)
    T = np.eye(4)
    T[:3, :3] = R_mj @ FLIP_YZ
    T[:3, 3] = np.asarray(cam_xpos, dtype=np.float64)
    return Camera(K=intrinsics(width, height, fovy_deg), T_world_cam=T, width=width, height=height, name=name)


def mujoco_pose_from_look_at(eye, target, up=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(pos, quat w-x-y-z) of a MuJoCo camera at ``eye`` looking at ``target`` with ``up`` up in the image."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z_cv = target - eye
    n = np.linalg.norm(z_cv)
    if n < 1e-9:
        raise ValueError("camera_eye/camera_target: eye and target coincide; the camera needs a direction")
    z_cv /= n
    x_cv = np.cross(z_cv, up)
    if np.linalg.norm(x_cv) < 1e-9:
        raise ValueError("camera_eye/camera_target: the camera looks straight up or down; tilt it a little")
    x_cv /= np.linalg.norm(x_cv)
    y_cv = np.cross(z_cv, x_cv)
    R_cv = np.stack([x_cv, y_cv, z_cv], axis=1)
    return eye, quat_from_matrix(R_cv @ FLIP_YZ)
