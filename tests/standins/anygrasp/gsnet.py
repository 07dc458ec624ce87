"""Stand-in of the AnyGrasp SDK's ``gsnet`` module (tests only); see README.md beside it."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from graspnetAPI import GRASP_ARRAY_LEN, GraspGroup

PLANE_INLIER_M = 0.005
OBJECT_ABOVE_PLANE_M = 0.008
FINGER_M = 0.01          # finger thickness (closing direction) and half its size across
GRASP_DEPTH_M = 0.02     # fingertips reach this far beyond the grasp point


def _fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Dominant plane n . p = d (unit n) by iteratively refitted least squares."""
    keep = np.ones(len(points), bool)
    n, d = np.array([0.0, 0.0, 1.0]), 0.0
    for _ in range(5):
        P = points[keep]
        c = P.mean(0)
        _, _, vt = np.linalg.svd(P - c, full_matrices=False)
        n = vt[-1]
        d = float(n @ c)
        dist = np.abs(points @ n - d)
        new = dist < max(PLANE_INLIER_M, np.percentile(dist, 50))
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    return n, d


class AnyGrasp:
    def __init__(self, cfgs) -> None:
        self.cfgs = cfgs
        self.max_width = float(min(0.1, getattr(cfgs, "max_gripper_width", 0.1)))
        self.loaded = False

    def load_net(self) -> None:
        if not os.path.isdir("license"):
            raise RuntimeError("[AnyGrasp stand-in] license folder not found in the current directory")
        if not os.path.isfile(self.cfgs.checkpoint_path):
            raise FileNotFoundError(f"[AnyGrasp stand-in] checkpoint {self.cfgs.checkpoint_path} not found")
        self.loaded = True

    def get_grasp(self, points, colors, lims=None, apply_object_mask=True, dense_grasp=False,
                  collision_detection=True):
        assert self.loaded, "call load_net() first"
        points = np.asarray(points)
        colors = np.asarray(colors)
        if points.dtype != np.float32 or points.ndim != 2 or points.shape[1] != 3:
            raise ValueError("points must be float32 (N, 3), camera frame, metres")
        if colors.shape != points.shape or colors.dtype != np.float32 or colors.min() < 0 or colors.max() > 1:
            raise ValueError("colors must be float32 (N, 3) in [0, 1]")
        cloud = SimpleNamespace(points=points, colors=colors)
        if len(points) < 10:
            return GraspGroup(), cloud
        n, d = _fit_plane(points.astype(np.float64))
        if n[2] < 0:  # normal towards the camera (the camera looks along +z)
            n, d = -n, -d
        height = d - points @ n          # > 0: between the plane and the camera
        obj = height > OBJECT_ABOVE_PLANE_M if apply_object_mask else np.ones(len(points), bool)
        P = points[obj].astype(np.float64)
        if len(P) < 5:
            return GraspGroup(), cloud
        approach = n                      # into the table, away from the camera
        u = np.cross(approach, [1.0, 0.0, 0.0])
        if np.linalg.norm(u) < 1e-6:
            u = np.cross(approach, [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(approach, u)
        uv = np.stack([P @ u, P @ v], -1)
        centre = uv.mean(0)
        step = max(1, len(P) // (200 if dense_grasp else 40))
        rows = []
        for i in range(0, len(P), step):
            near = np.linalg.norm(uv - uv[i], axis=1) < self.max_width / 2
            Q = uv[near]
            c = Q.mean(0)
            cov = np.cov((Q - c).T) if len(Q) > 2 else np.eye(2)
            evals, evecs = np.linalg.eigh(cov)
            minor = evecs[:, 0]
            proj = (Q - c) @ minor
            width = float(proj.max() - proj.min()) + 0.01
            if width > self.max_width:
                continue
            closing = minor[0] * u + minor[1] * v
            if closing @ np.array([1.0, 0.0, 0.0]) < 0:
                closing = -closing
            top = float(np.min(P[near] @ approach))
            t = c[0] * u + c[1] * v + top * approach   # on the top surface
            R = np.stack([approach, closing, np.cross(approach, closing)], 1)
            if lims is not None:
                x0, x1, y0, y1, z0, z1 = lims
                if not (x0 <= t[0] <= x1 and y0 <= t[1] <= y1 and z0 <= t[2] <= z1):
                    continue
            if collision_detection:
                local = (points.astype(np.float64) - t) @ R   # gripper frame: x approach, y closing
                x_in = (local[:, 0] > -0.02) & (local[:, 0] < GRASP_DEPTH_M)
                z_in = np.abs(local[:, 2]) < FINGER_M
                y_in = np.abs(np.abs(local[:, 1]) - (width / 2 + FINGER_M / 2)) < FINGER_M / 2
                if np.any(x_in & y_in & z_in):
                    continue
            score = float(1.0 / (1.0 + 20.0 * np.linalg.norm(c - centre)) * (1.0 - 0.5 * width / self.max_width))
            row = np.zeros(GRASP_ARRAY_LEN, np.float32)
            row[0], row[1], row[2], row[3] = score, width, getattr(self.cfgs, "gripper_height", 0.03), GRASP_DEPTH_M
            row[4:13] = R.reshape(-1)
            row[13:16] = t
            row[16] = -1
            rows.append(row)
        return GraspGroup(np.array(rows, np.float32) if rows else None), cloud
