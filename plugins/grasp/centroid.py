"""``centroid`` grasper: one top-down parallel-jaw grasp at the object's centre.

From the valid-depth pixels inside the mask (world points, :meth:`RGBD.point_cloud`):

* position (x, y): the centroid of the object as seen from above. Each pixel is weighted by
  the area its footprint covers on a horizontal plane at its own height, so the many pixels
  of the near side of an object seen at an angle do not pull the centroid towards the camera
  (a top-down grasp assumes a roughly horizontal top anyway);
* position z: the top surface height (95th percentile of the points' z) minus
  ``depth_below_top``, clipped so it never goes below the lowest observed object point;
* approach (grasp z axis): straight down, world -z;
* closing direction (grasp x axis): the minor principal axis of the (area-weighted) xy spread;
* width: the extent of the points along the closing axis, plus one pixel footprint along it
  (each edge lies 0 to 1 pixel beyond the outermost pixel centre: this adds the mean for edges
  aligned with the pixel grid and errs wide, the safe side for a gripper, for oblique edges),
  plus ``margin``. Wider than ``max_width`` is an error.

World frame, metres. Deterministic: the closing axis sign is fixed (x >= 0, or +y when
x == 0).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import RGBD, Grasp, Manifest, hookimpl
from d2f_core.validate import check_mask

__all__ = ["CentroidOptions", "CentroidGrasper"]


class CentroidOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth_below_top: float = Field(default=0.01, ge=0.0,
                                   description="how far below the object's top surface the fingertips "
                                               "go, metres (clipped to the object's observed height)")
    margin: float = Field(default=0.01, ge=0.0,
                          description="extra opening added to the object's width, metres")
    max_width: float = Field(default=0.08, gt=0.0,
                             description="the gripper's maximum opening, metres; wider objects are an "
                                         "error")


def _footprints(rgbd: RGBD, xs: np.ndarray, ys: np.ndarray, z_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World xy displacement (M x 2) of one pixel step along image x and along image y, on the
    horizontal plane through each point. NaN where the ray misses that plane."""
    cam = rgbd.camera
    R, o = cam.T_world_cam[:3, :3], cam.T_world_cam[:3, 3]
    fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]

    def on_plane(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        d = np.stack([(px - cx) / fx, (py - cy) / fy, np.ones_like(px)], -1) @ R.T
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (z_world - o[2]) / d[:, 2]
        p = o[:2] + t[:, None] * d[:, :2]
        p[~(np.isfinite(t) & (t > 0))] = np.nan
        return p

    du = on_plane(xs + 0.5, ys) - on_plane(xs - 0.5, ys)
    dv = on_plane(xs, ys + 0.5) - on_plane(xs, ys - 0.5)
    return du, dv


class CentroidGrasper:
    """One top-down grasp at the object's centroid (see the module docstring)."""

    name = "centroid"
    kind = "grasper"
    capabilities = frozenset({"top_down", "deterministic"})
    Options = CentroidOptions
    description = "one top-down parallel-jaw grasp at the object's centroid, across its minor axis"
    verified = "conformance box: centre within 5 mm, width within 1 cm; rotated boxes in tests"

    def __init__(self, options: CentroidOptions | None = None) -> None:
        self.options = options or CentroidOptions()

    def propose(self, rgbd: RGBD, mask: np.ndarray, *, top_k: int = 40) -> list[Grasp]:
        if not isinstance(rgbd, RGBD):
            raise ValueError(f"rgbd: expected d2f_core.RGBD (rgb, depth in metres, camera), got "
                             f"{type(rgbd).__name__}")
        mask = check_mask(mask, rgbd.depth.shape, "mask")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k: expected an integer >= 1, got {top_k!r}")
        if not mask.any():
            raise ValueError("mask: is empty; segment the object first (True = object pixels)")
        keep = mask & rgbd.valid
        if not keep.any():
            raise ValueError(f"mask: none of its {int(mask.sum())} pixels has valid depth (finite, > 0 "
                             "metres); check the depth image and that the mask matches it")
        ys, xs = np.nonzero(keep)
        pts = rgbd.camera.backproject(np.stack([xs, ys], -1).astype(np.float64),
                                      rgbd.depth[ys, xs].astype(np.float64))
        o = self.options

        # area weights: footprint of each pixel on a horizontal plane at its height
        du, dv = _footprints(rgbd, xs.astype(np.float64), ys.astype(np.float64), pts[:, 2])
        area = np.abs(du[:, 0] * dv[:, 1] - du[:, 1] * dv[:, 0])
        ok = np.isfinite(area) & (area > 0)
        if ok.any():
            med = float(np.median(area[ok]))
            w = np.where(ok, np.minimum(area, 10.0 * med), med)  # grazing rays: cap their weight
        else:  # no footprint (camera level with the points): equal weights
            w = np.ones(len(pts))
        w = w / w.sum()

        xy = pts[:, :2]
        centre = w @ xy
        d = xy - centre
        cov = (d * w[:, None]).T @ d
        evals, evecs = np.linalg.eigh(cov)  # ascending: column 0 = minor axis
        axis = evecs[:, 0]
        if axis[0] < 0 or (axis[0] == 0 and axis[1] < 0):
            axis = -axis
        proj = d @ axis
        foot = np.abs(du @ axis) + np.abs(dv @ axis)
        foot = float(np.median(foot[np.isfinite(foot)])) if np.isfinite(foot).any() else 0.0
        extent = float(proj.max() - proj.min()) + foot
        width = extent + o.margin
        if width > o.max_width:
            raise ValueError(f"object too wide for a top-down grasp: {extent * 1000:.1f} mm across its "
                             f"narrowest axis + margin {o.margin * 1000:.1f} mm = {width * 1000:.1f} mm "
                             f"> max_width {o.max_width * 1000:.1f} mm; raise grasper.options.max_width "
                             "if the gripper opens wider, or use another grasper")

        z = pts[:, 2]
        z_top = float(np.percentile(z, 95))
        z_grasp = z_top - min(o.depth_below_top, max(0.0, z_top - float(z.min())))

        x_axis = np.array([axis[0], axis[1], 0.0])
        z_axis = np.array([0.0, 0.0, -1.0])
        y_axis = np.cross(z_axis, x_axis)
        T = np.eye(4)
        T[:3, 0], T[:3, 1], T[:3, 2] = x_axis, y_axis, z_axis
        T[:3, 3] = [centre[0], centre[1], z_grasp]
        return [Grasp(T_world_grasp=T, width=width, score=1.0, source="top-down")]


@hookimpl
def d2f_register(register):
    register(Manifest.of(CentroidGrasper))
