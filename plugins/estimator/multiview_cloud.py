"""``multiview-cloud`` estimator: the flow's particles found in a point cloud from several calibrated
RGB-D cameras (the paper's Push-T perception: no simulator state).

Each ``estimate(observation)``:

1. **Point cloud**: every view in ``observation.state["views"]`` (a sequence of
   :class:`~d2f_core.RGBD`, each with its camera's intrinsics and camera-to-world pose; the
   ``pusht`` world renders 4 around the board), or ``observation.rgbd`` alone when the world gives no
   views, is back-projected to world points (metres).
2. **Crop** to the workspace: inside ``crop_min``..``crop_max`` (world frame, metres; the
   default keeps the board's square and drops its surface: z > 5 mm) and, **robot self-filter**,
   away from the end-effector: points within ``robot_radius`` (xy) of ``observation.state["ee_pos"]``
   and above its tip minus ``robot_margin`` are the robot, not the object (a real system masks its
   arm with its known kinematics the same way).
3. **Voxels**: one random point per ``voxel`` (1.5 cm, the paper's) cube, drawn from a generator
   seeded by ``seed`` and the step count (deterministic).
4. **Matching by nearest neighbour**: the particles' previous estimate (at reset the flow's
   first-frame points: the video starts from the current scene) is aligned to the cloud by ICP:
   each particle is matched to its nearest cloud point, a rigid motion is fitted to the matched
   pairs (planar: a rotation about z and an xy translation, for objects sliding on a table; or
   ``motion: rigid3d``), and the two alternate until the mean match distance stops improving.
   When the result still misfits (mean match distance > ``refit_threshold``), ICP restarts from
   ``restarts`` rotations about the cloud's centroid and the best fit is kept (a fast push between
   two estimates); the fit is then refined the same way on up to ``refine_points`` points of the
   cloud before voxels (the voxel cloud is coarse; registration need not be). The particles are the previous ones moved by that motion, so they keep the
   flow's order and their rigid layout.
5. **Visible**: particles whose nearest cloud point after the alignment is within ``voxel``;
   every particle once the cloud is empty (then the particles stay where they were, visible
   False).

``info`` (last estimate): cloud size, matched fraction, mean match distance (metres), restarts used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import Manifest, ObjectFlow, Observation, hookimpl

__all__ = ["MultiviewCloudOptions", "MultiviewCloudEstimator", "voxel_sample", "icp"]


class MultiviewCloudOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voxel: float = Field(default=0.015, gt=0.0, le=0.2, description="voxel side, metres (paper: 1.5 cm)")
    crop_min: list[float] = Field(default=[-0.256, -0.256, 0.005],
                                  description="lower corner (x, y, z) of the kept workspace, metres, world frame")
    crop_max: list[float] = Field(default=[0.256, 0.256, 0.2],
                                  description="upper corner (x, y, z) of the kept workspace, metres, world frame")
    robot_radius: float = Field(default=0.025, ge=0.0, le=0.5,
                                description="points within this xy distance of the end-effector tip (and above it "
                                            "minus robot_margin) are the robot, metres")
    robot_margin: float = Field(default=0.005, ge=0.0, le=0.5, description="metres; see robot_radius")
    motion: str = Field(default="planar", pattern="^(planar|rigid3d)$",
                        description="'planar': rotation about z + xy translation; 'rigid3d': any rigid motion")
    iterations: int = Field(default=30, ge=1, le=1000, description="ICP iterations at most")
    refit_threshold: float = Field(default=0.006, gt=0.0,
                                   description="mean match distance (metres) above which ICP restarts from other "
                                               "rotations")
    restarts: int = Field(default=12, ge=0, le=360, description="rotations tried when the first fit misfits")
    refine_points: int = Field(default=4000, ge=0, le=1_000_000,
                               description="the alignment is refined on up to this many points of the cloud "
                                           "before voxels (0: the voxel cloud only)")
    seed: int = Field(default=0, description="seed of the per-voxel point choice")


def voxel_sample(points: np.ndarray, voxel: float, rng: np.random.Generator) -> np.ndarray:
    """One random point of ``points`` (M x 3) per ``voxel`` cube: K x 3 (K = occupied voxels)."""
    if len(points) == 0:
        return points.reshape(0, 3)
    keys = np.floor(points / voxel).astype(np.int64)
    order = rng.permutation(len(points))
    _, first = np.unique(keys[order], axis=0, return_index=True)
    return points[order[first]]


def _fit(a: np.ndarray, b: np.ndarray, planar: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rigid (R 3x3, t 3) minimising |R a + t - b|^2; planar: R about z only, t_z = 0."""
    ca, cb = a.mean(0), b.mean(0)
    if planar:
        H = (a[:, :2] - ca[:2]).T @ (b[:, :2] - cb[:2])
        U, _, Vt = np.linalg.svd(H)
        D = np.diag([1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
        R2 = Vt.T @ D @ U.T
        R = np.eye(3)
        R[:2, :2] = R2
        t = np.zeros(3)
        t[:2] = cb[:2] - R2 @ ca[:2]
        return R, t
    H = (a - ca).T @ (b - cb)
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, cb - R @ ca


def icp(source: np.ndarray, tree: Any, cloud: np.ndarray, *, planar: bool, iterations: int,
        R0: np.ndarray | None = None, t0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Align ``source`` (N x 3) to ``cloud`` (its cKDTree ``tree``) by point-to-point ICP from (R0, t0):
    (R, t, mean nearest distance after the alignment, metres)."""
    R = np.eye(3) if R0 is None else R0
    t = np.zeros(3) if t0 is None else t0
    prev = np.inf
    for _ in range(iterations):
        moved = source @ R.T + t
        d, j = tree.query(moved)
        err = float(d.mean())
        if prev - err < 1e-7:
            break
        prev = err
        R, t = _fit(source, cloud[j], planar)
    d, _ = tree.query(source @ R.T + t)
    return R, t, float(d.mean())


class MultiviewCloudEstimator:
    """The flow's particles registered to the multi-camera point cloud (module docstring)."""

    name, kind, Options = "multiview-cloud", "estimator", MultiviewCloudOptions
    capabilities = frozenset({"deterministic", "multiview"})
    description = ("point cloud from the world's calibrated RGB-D views (observation.state['views']), cropped, "
                   "one random point per 1.5 cm voxel, particles matched by nearest neighbour (ICP)")
    verified = "Push-T: within 1 cm of the true particles along pushes (tests/test_multiview_cloud.py)"

    def __init__(self, options: MultiviewCloudOptions | None = None) -> None:
        self.options = options or MultiviewCloudOptions()
        self._P: np.ndarray | None = None
        self._steps = 0
        self.info: dict[str, Any] = {}

    def cloud(self, observation: Observation) -> np.ndarray:
        """The cropped, robot-filtered, voxelised cloud (K x 3, metres, world frame) of ``observation``."""
        return self._clouds(observation)[0]

    def _clouds(self, observation: Observation) -> tuple[np.ndarray, np.ndarray]:
        """(voxelised cloud K x 3, the cropped robot-filtered cloud before voxels M x 3)."""
        o = self.options
        views = observation.state.get("views") if hasattr(observation.state, "get") else None
        if views is None and observation.rgbd is not None:
            views = (observation.rgbd,)  # one calibrated camera is a view too
        if views is None:
            raise ValueError("observation.state['views']: multiview-cloud builds its point cloud from the world's "
                             "calibrated RGB-D views (or observation.rgbd), but this observation has neither; use a "
                             "world with capability 'multiview' (e.g. `world: {plugin: pusht}`) or one that renders "
                             "its camera every step")
        pts = [np.asarray(v.point_cloud()[0], dtype=np.float64) for v in views]
        P = np.concatenate(pts) if pts else np.zeros((0, 3))
        lo, hi = np.asarray(o.crop_min, dtype=np.float64), np.asarray(o.crop_max, dtype=np.float64)
        keep = np.all((P >= lo) & (P <= hi), axis=1)
        ee = observation.state.get("ee_pos")
        if ee is not None and o.robot_radius > 0:
            e = np.asarray(ee, dtype=np.float64)
            near = np.hypot(P[:, 0] - e[0], P[:, 1] - e[1]) <= o.robot_radius
            keep &= ~(near & (P[:, 2] >= e[2] - o.robot_margin))
        rng = np.random.default_rng([int(o.seed), self._steps])
        full = P[keep]
        return voxel_sample(full, o.voxel, rng), full

    def reset(self, observation: Observation, flow: ObjectFlow) -> None:
        if not isinstance(observation, Observation):
            raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")
        if not isinstance(flow, ObjectFlow):
            raise ValueError(f"flow: expected a d2f_core.ObjectFlow, got {type(flow).__name__}")
        self._P = np.array(flow.points[0], dtype=np.float64)
        self._known = np.array(flow.visible[0], dtype=bool)
        self._P[~self._known] = np.nan
        self._steps = 0

    def estimate(self, observation: Observation) -> tuple[np.ndarray, np.ndarray]:
        from scipy.spatial import cKDTree

        if self._P is None:
            raise RuntimeError("multiview-cloud: call reset(observation, flow) before estimate(observation)")
        o = self.options
        planar = o.motion == "planar"
        if not isinstance(observation, Observation):
            raise ValueError(f"observation: expected a d2f_core.Observation, got {type(observation).__name__}")
        C, full = self._clouds(observation)
        self._steps += 1
        known = self._known
        if len(C) < 3 or not known.any():
            self.info = {"cloud": int(len(C)), "matched": 0.0, "mean_distance_m": None, "restarts": 0}
            return np.nan_to_num(self._P).astype(np.float32), np.zeros(len(self._P), bool)
        tree = cKDTree(C)
        src = self._P[known]
        R, t, err = icp(src, tree, C, planar=planar, iterations=o.iterations)
        used = 0
        if err > o.refit_threshold and o.restarts > 0:
            c_src, c_dst = src.mean(0), C.mean(0)
            for k in range(1, o.restarts + 1):
                a = 2 * math.pi * k / (o.restarts + 1)
                Rz = np.eye(3)
                Rz[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
                t0 = c_dst - Rz @ c_src
                if planar:
                    t0[2] = 0.0
                R2, t2, e2 = icp(src, tree, C, planar=planar, iterations=o.iterations, R0=Rz, t0=t0)
                used += 1
                if e2 < err:
                    R, t, err = R2, t2, e2
        if len(full) > len(C):
            # refine on the cloud before voxels (one random point per 1.5 cm voxel is ~7 mm of noise per match;
            # the particles' model is the voxel cloud, their registration need not be)
            pick = full if len(full) <= o.refine_points else full[np.random.default_rng(
                [int(o.seed), self._steps, 1]).choice(len(full), o.refine_points, replace=False)]
            R, t, _ = icp(src, cKDTree(pick), pick, planar=planar, iterations=o.iterations, R0=R, t0=t)
        moved = src @ R.T + t
        d, _ = tree.query(moved)
        self._P[known] = moved
        vis = np.zeros(len(self._P), bool)
        vis[np.nonzero(known)[0]] = d <= o.voxel
        self.info = {"cloud": int(len(C)), "matched": float(vis[known].mean()), "mean_distance_m": round(err, 5),
                     "restarts": used}
        return np.nan_to_num(self._P).astype(np.float32), vis


@hookimpl
def d2f_register(register):
    register(Manifest.of(MultiviewCloudEstimator))
