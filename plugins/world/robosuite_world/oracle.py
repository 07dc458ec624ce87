"""What the oracle returns: :class:`OracleRollout` (pure numpy; no simulator needed to read it).

``world.oracle_rollout(num_frames)`` scripts the task done right from the world's current state
(see :mod:`.tasks` for the motions), renders it from the world's camera with the robot hidden,
and returns one of these. The live simulation is never touched: the rollout runs on a scratch
``MjData``. The same rollout feeds ``sim-oracle`` (frames), ``sim-depth`` (depth), ``sim-hand``
(contact point) and the ground truth written by ``d2f world oracle`` (``oracle_truth.npz``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from d2f_core import Camera, Video
from d2f_core.types import frames_match

__all__ = ["OracleRollout", "true_motion", "load_truth"]


@dataclass(frozen=True)
class OracleRollout:
    """A scripted rollout of the task done right.

    Fields (T frames, H x W images, world frame, metres, radians):
        task: the task name (``open_door``, ...).
        object_name: the movable part the motion moves (``world.task.object``).
        camera: the camera the frames are rendered from (the world's).
        fps: frame rate the video is meant to play at.
        frames: uint8 T x H x W x 3 RGB, the robot hidden when ``robot_hidden``.
        depth: float32 T x H x W metric depth along the camera z axis (0 = nothing drawn).
        qpos: float64 T x nq, the simulator's joint positions per frame (the robot's stay at the
            start); ``world.apply_oracle_state(rollout, t)`` puts the world in frame t's state.
        mask0: bool H x W, the movable part's pixels in frame 0 (robot hidden).
        points_px: float32 N x 2, pixels (x, y) of frame 0 the truth points come from (a
            deterministic subsample of ``mask0``).
        points_world: float32 T x N x 3, those surface points moved rigidly with their bodies:
            the true motion of the movable part (handle rotation included for the door).
        point_body: int64 N, index into ``bodies`` of the body each point rides on.
        bodies: names of the movable part's bodies; body_poses: float64 T x B x 4 x 4 their poses.
        contact_world: float64 T x 3, the scripted contact point (where a hand holds the object:
            door or oven handle, top of the bread); contact_px: float64 T x 2 its pixels.
        success: whether the task's own success check accepts the final frame's state.
        robot_hidden: whether the robot was hidden in the frames.
        state_key: fingerprint of the world state the rollout started from.
    """

    task: str
    object_name: str
    camera: Camera
    fps: float
    frames: np.ndarray
    depth: np.ndarray
    qpos: np.ndarray
    mask0: np.ndarray
    points_px: np.ndarray
    points_world: np.ndarray
    point_body: np.ndarray
    bodies: tuple[str, ...]
    body_poses: np.ndarray
    contact_world: np.ndarray
    contact_px: np.ndarray
    success: bool
    robot_hidden: bool = True
    state_key: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def video(self, *, prompt: str = "", seed: int | None = None, model: str = "sim-oracle") -> Video:
        """The frames as a :class:`~d2f_core.Video`."""
        return Video(frames=self.frames, fps=self.fps, model=model, prompt=prompt, seed=seed)

    def matches(self, frames: np.ndarray, tol: float = 1.0) -> bool:
        """Whether ``frames`` (T x H x W x 3) are these frames (exactly, or within ``tol`` mean abs
        difference on the first, middle and last frames, for a lossless round trip)."""
        return frames_match(self.frames, frames, tol)

    def save_truth(self, path: str | Path) -> Path:
        """Write the ground truth as ``.npz`` (arrays named like the fields; ``meta`` is JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"task": self.task, "object_name": self.object_name, "fps": self.fps, "success": self.success,
                "robot_hidden": self.robot_hidden, "bodies": list(self.bodies), "state_key": self.state_key,
                "camera": self.camera.to_json(), "units": "metres, world frame; pixels (x, y)",
                **{k: v for k, v in self.extras.items() if isinstance(v, (str, int, float, bool, list, dict))}}
        with open(path, "wb") as f:
            np.savez_compressed(f, points_px=self.points_px, points_world=self.points_world,
                                point_body=self.point_body, body_poses=self.body_poses, mask0=self.mask0,
                                contact_world=self.contact_world, contact_px=self.contact_px, qpos=self.qpos,
                                meta=np.array(json.dumps(meta)))
        return path


def load_truth(path: str | Path) -> dict[str, Any]:
    """Read ``oracle_truth.npz`` (written by :meth:`OracleRollout.save_truth`): arrays plus ``meta`` (a dict)."""
    with np.load(Path(path), allow_pickle=False) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files if k != "meta"}
        out["meta"] = json.loads(str(z["meta"])) if "meta" in z.files else {}
    return out


def true_motion(truth: Any, points0: np.ndarray) -> np.ndarray:
    """True positions (T x N x 3, metres) of arbitrary movable-part points given at frame 0.

    ``truth`` is an :class:`OracleRollout` or the dict of :func:`load_truth`; ``points0`` (N x 3,
    world frame) are points on the movable part at frame 0 (e.g. a flow's first frame). Each point
    rides on the body of its nearest truth point: ``p_t = P_t P_0^-1 p_0`` exactly for rigid bodies.
    """
    get = (lambda k: getattr(truth, k)) if isinstance(truth, OracleRollout) else (lambda k: truth[k])
    ref = np.asarray(get("points_world"), np.float64)[0]
    body = np.asarray(get("point_body"), np.int64)
    poses = np.asarray(get("body_poses"), np.float64)  # T x B x 4 x 4
    p0 = np.asarray(points0, np.float64).reshape(-1, 3)
    nearest = np.empty(len(p0), np.int64)
    for i in range(0, len(p0), 512):
        d = ((p0[i:i + 512, None, :] - ref[None]) ** 2).sum(-1)
        nearest[i:i + 512] = d.argmin(1)
    b = body[nearest]
    P0 = poses[0, b]  # N x 4 x 4
    local = np.einsum("nji,nj->ni", P0[:, :3, :3], p0 - P0[:, :3, 3])
    Pt = poses[:, b]  # T x N x 4 x 4
    return np.einsum("tnij,nj->tni", Pt[..., :3, :3], local) + Pt[..., :3, 3]
