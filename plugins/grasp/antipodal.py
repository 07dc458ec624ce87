"""``antipodal`` grasper: an offline antipodal grasp sampler on the RGB-D point cloud (paper §4.5).

Two views of the same cloud each propose half of the candidates:

* ``"camera"``: the real camera's cloud;
* ``"top-down"``: the scene cloud re-rendered (3 x 3 pixel splats, z-buffer) by a virtual
  pinhole camera ``top_down_height`` above the object looking straight down world -z, so only
  what that view sees is kept.

Contact samples of the object, per view (each with an outward normal and a "spread": how far
beyond the sample the surface may lie, 0 for surface points):

* surface points (object points on a ``voxel`` grid) with PCA normals of their
  ``normal_neighbors`` nearest samples, oriented towards the view;
* occluding-contour points: object pixels on the mask outline whose outward neighbour is
  further away by more than ``contour_jump`` (or has no depth). There the surface is tangent to
  the viewing ray, so its outward normal is perpendicular to the ray, along the outline's outward
  image normal; the true edge lies within one pixel footprint (the spread) beyond the point.
  This is how the sides a single view cannot see (the jaws' contacts on a box or a bar) are
  represented: from the top-down view they are vertical walls (a 2.5-D object; the outline point
  is the object point furthest out near the outline pixel); in the camera view, where the visible
  surface next to the outline turns by more than ``crease_angle`` from the contour normal the
  outline is an edge, and the hidden face is taken perpendicular to the visible one (box prior).

A pair (p_i, n_i), (p_j, n_j) is antipodal when the line between them lies in both friction
cones: -n_i . l and n_j . l >= cos(atan(friction_coef)), l = (p_j - p_i) / |p_j - p_i|. The
closing axis is u = unit(n_j - n_i) (the finger pads parallel to the contact faces); the width
needed is the samples' separation along u + half their spreads + ``margin``, at least
``min_width`` + margin and at most ``max_width``. Pairs are bucketed (1 cm midpoint cells x
closing-axis direction) and up to ``num_pairs`` per view are kept, spread over the object
(round-robin over 3 cm cells, best first).

For each pair ``num_approaches`` approach directions (grasp z) perpendicular to u are tried, those
within ``max_approach_angle`` of the view direction (the camera ray through the pair's midpoint,
or straight down for the top-down view). The grasp origin (between the fingertips) is the pair's
midpoint pushed along the approach by the deepest of ``push_depths`` for which both contacts lie
on the finger pads and the gripper model is collision-free against the WHOLE scene cloud (every
valid depth pixel within reach, object included, on a ``collision_voxel`` grid; the palm against
a grid twice as coarse):

* two finger boxes (``finger_thickness`` along x, ``finger_depth`` along y, ``finger_length``
  along z) whose inner faces are at x = +-width/2, from the fingertips (z = 0) back to
  z = -finger_length;
* the palm box (``palm_width`` x ``palm_depth`` x ``palm_height``) behind the fingers.

(For the check the boxes are grown by their cloud's grid spacing on every side but the fingers'
inner faces, so a corner cannot slip between samples.)

Score, higher is better, the sum of

* weight_quality * antipodal quality, (min cosine - cone cosine) / (1 - cone cosine);
* weight_clearance * min(1, distance from the gripper to the nearest non-object point /
  clearance_cap) * (1 - fraction of the finger volume hidden from the real camera, where the
  collision check could not look);
* weight_center * (1 - offset of the object centre from the grasp along grasp y / object radius,
  clipped at 0); centre and radius: the middle and half the longest side of the box around the
  observed object points along their principal axes;
* weight_approach * max(0, approach . view direction).

Non-maximum suppression per view drops a candidate closer than ``nms_distance`` AND ``nms_angle``
(parallel-jaw symmetric) to a better one. ``top_k // 2`` come from the top-down view and the rest
from the camera (a view with too few leaves its share to the other; ``top_k`` = 1 gives the
better of the two views' best); returned best first with ``Grasp.source`` = "camera" or
"top-down".

Grasp frame: z = approach, x = closing direction, y = z cross x, origin between the fingertips.
World frame, metres, radians. Deterministic for a given ``seed`` (it picks the sample subset when
a view has more than ``max_samples``). Errors (ValueError) name the argument: an empty mask or one
without valid depth ("mask"), an object whose only antipodal pairs are wider than the gripper
("max_width"). No pair at all (e.g. a handful of pixels) or no collision-free candidate gives [].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from d2f_core import RGBD, Grasp, Manifest, hookimpl
from d2f_core.geometry import R_TOP_DOWN, zbuffer
from d2f_core.validate import check_mask

__all__ = ["AntipodalOptions", "AntipodalGrasper"]

_R_TOP_DOWN = R_TOP_DOWN
"""Camera-to-world rotation of the virtual top-down camera (OpenCV axes; looks along world -z)."""


class AntipodalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    friction_coef: float = Field(default=0.5, gt=0.0, description="Coulomb friction coefficient mu; the "
                                 "friction cone's half-angle is atan(mu), radians (dimensionless)")
    max_width: float = Field(default=0.08, gt=0.0, description="the gripper's maximum opening, metres "
                             "(Panda: 0.08)")
    min_width: float = Field(default=0.005, ge=0.0, description="narrowest contact pair considered, metres")
    margin: float = Field(default=0.01, ge=0.0, description="opening added to the contact distance, metres "
                          "(half of it clears each side)")
    push_depths: tuple[float, ...] = Field(default=(0.025, 0.015, 0.008), min_length=1, description="how far past the "
                                           "contact pair's midpoint the fingertips go along the approach, "
                                           "metres; the deepest collision-free one is used")
    finger_length: float = Field(default=0.05, gt=0.0, description="finger length along the approach, metres")
    finger_thickness: float = Field(default=0.02, gt=0.0, description="finger size along the closing "
                                    "axis, metres")
    finger_depth: float = Field(default=0.02, gt=0.0, description="finger size along grasp y, metres")
    palm_width: float = Field(default=0.2, gt=0.0, description="hand (palm) size along the closing axis, "
                              "metres")
    palm_depth: float = Field(default=0.06, gt=0.0, description="hand size along grasp y, metres")
    palm_height: float = Field(default=0.05, gt=0.0, description="hand size along the approach, behind the "
                               "fingers, metres")
    top_down_height: float = Field(default=0.5, gt=0.0, description="height of the virtual top-down camera "
                                   "above the object's highest point, metres")
    top_down_pixel: float = Field(default=0.003, gt=0.0, description="pixel size of the virtual top-down "
                                  "view at the object's top, metres (raised to the cloud's spacing)")
    voxel: float = Field(default=0.004, gt=0.0, description="grid of the contact samples, metres")
    collision_voxel: float = Field(default=0.004, gt=0.0, description="grid of the scene cloud for finger "
                                   "collisions, metres (the palm uses twice this)")
    normal_neighbors: int = Field(default=12, ge=3, description="samples per PCA normal estimate (count)")
    contour_jump: float = Field(default=0.01, gt=0.0, description="depth step behind an outline pixel that "
                                "makes it an occluding contour, metres")
    crease_angle: float = Field(default=math.radians(45.0), gt=0.0, le=math.pi, description="camera view: "
                                "an outline point whose visible surface turns by more than this from "
                                "the contour normal is an edge, and its hidden face is taken "
                                "perpendicular to the visible one (box prior), radians")
    max_samples: int = Field(default=1500, ge=10, description="contact samples per view (count; random "
                             "subset beyond)")
    num_pairs: int = Field(default=64, ge=1, description="antipodal pairs tried per view (count)")
    num_approaches: int = Field(default=12, ge=1, description="approach directions tried around each "
                                "closing axis, evenly spaced (count)")
    max_approach_angle: float = Field(default=1.4, gt=0.0, le=math.pi, description="largest angle between "
                                      "the approach and the view direction, radians")
    clearance_cap: float = Field(default=0.02, gt=0.0, description="clearance from non-object points "
                                 "counting fully in the score, metres")
    nms_distance: float = Field(default=0.01, ge=0.0, description="non-maximum suppression: minimum "
                                "distance between kept grasps unless their orientations differ, metres")
    nms_angle: float = Field(default=math.radians(15.0), ge=0.0, description="non-maximum suppression: "
                             "minimum rotation between kept grasps unless their positions differ, radians")
    weight_quality: float = Field(default=0.4, ge=0.0, description="score weight of antipodal quality (dimensionless)")
    weight_clearance: float = Field(default=0.2, ge=0.0, description="score weight of clearance (dimensionless)")
    weight_center: float = Field(default=0.2, ge=0.0, description="score weight of centring on the object "
                                 "(dimensionless)")
    weight_approach: float = Field(default=0.2, ge=0.0, description="score weight of approaching from the "
                                   "view side (dimensionless)")
    seed: int = Field(default=0, description="random seed of the contact-sample subset (drawn when a view "
                      "has more than max_samples)")

    @model_validator(mode="after")
    def _check(self) -> "AntipodalOptions":
        if self.min_width + self.margin >= self.max_width:
            raise ValueError(f"min_width + margin ({self.min_width + self.margin} m) must be below max_width "
                             f"({self.max_width} m)")
        if any(not (0.0 <= p < self.finger_length) for p in self.push_depths):
            raise ValueError(f"push_depths: each must lie in [0, finger_length={self.finger_length}) metres, "
                             f"got {list(self.push_depths)}")
        return self


# --------------------------------------------------------------------------- small geometry helpers


def _voxel_mean(points: np.ndarray, size: float, *extra: np.ndarray) -> tuple[np.ndarray, ...]:
    """Average of the points (and of ``extra`` per-point arrays) in each occupied cubic cell,
    cells in a fixed (sorted) order."""
    if len(points) == 0:
        return (points, *extra)
    cells = np.floor(points / size).astype(np.int64)
    cells -= cells.min(0)
    dims = cells.max(0) + 1
    key = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)

    def mean(a: np.ndarray) -> np.ndarray:
        a2 = a.reshape(len(a), -1).astype(np.float64)
        out = np.stack([np.bincount(inv, a2[:, c], len(counts)) for c in range(a2.shape[1])], 1) / counts[:, None]
        return out.reshape((len(counts),) + a.shape[1:])

    return (mean(points), *(mean(e) for e in extra))


def _pca_normals(points: np.ndarray, k: int, eye: np.ndarray) -> np.ndarray:
    """Unit normals (smallest principal axis of the k nearest points), turned towards ``eye``
    (a point, or (N, 3) points)."""
    from scipy.spatial import cKDTree

    n = len(points)
    if n < 3:
        return np.zeros((n, 3))
    _, idx = cKDTree(points).query(points, k=min(k, n))
    nb = points[idx] - points[idx].mean(1, keepdims=True)
    _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", nb, nb))
    normals = vecs[:, :, 0]
    flip = np.einsum("ni,ni->n", normals, eye - points) < 0
    normals[flip] *= -1
    return normals


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _contours(obj: np.ndarray, depth: np.ndarray, K: np.ndarray, R: np.ndarray, jump: float,
              probe: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Occluding-contour pixels of the object mask ``obj`` in a depth image (0 = no depth).

    Returns their pixel coordinates (M, 2 int: x, y) and world outward normals (M, 3):
    perpendicular to the pixel's ray, towards the outline's outward image normal.
    """
    import cv2

    obj_u8 = obj.astype(np.uint8)
    inner = cv2.erode(obj_u8, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)), borderValue=0)
    outline = obj & (inner == 0)
    # occluding edges inside the mask too (a handle bar in front of its own door): object pixels
    # with a farther surface (by more than ``jump``) within a few pixels
    valid = (depth > 0) & np.isfinite(depth)
    far = np.where(valid, depth, np.float32(1e3)).astype(np.float32)
    k = int(2 * round(probe) + 1)
    near_far = cv2.dilate(far, np.ones((k, k), np.uint8)) > far + jump
    internal = obj & valid & near_far & ~outline
    ys, xs = np.nonzero(outline | internal)
    if len(xs) == 0:
        return np.zeros((0, 2), np.int64), np.zeros((0, 3))
    is_int = internal[ys, xs]
    blur = cv2.GaussianBlur(obj.astype(np.float32), (0, 0), 1.5)
    gy, gx = np.gradient(blur)
    m = -np.stack([gx[ys, xs], gy[ys, xs]], 1).astype(np.float64)
    if is_int.any():  # inside the mask: towards increasing depth (the far side clipped to the jump)
        dz = cv2.GaussianBlur(np.minimum(far, cv2.erode(far, np.ones((k, k), np.uint8)) + 2 * jump), (0, 0), 1.5)
        hy, hx = np.gradient(dz)
        m[is_int] = np.stack([hx[ys[is_int], xs[is_int]], hy[ys[is_int], xs[is_int]]], 1)
    norm = np.linalg.norm(m, axis=1)
    ok = norm > 1e-6
    m[ok] /= np.maximum(norm[ok, None], 1e-12)
    H, W = obj.shape
    px = np.rint(xs + probe * m[:, 0]).astype(np.int64)
    py = np.rint(ys + probe * m[:, 1]).astype(np.int64)
    ok &= (px >= 0) & (px < W) & (py >= 0) & (py < H)  # outline cut by the image border: no contour
    px, py = np.clip(px, 0, W - 1), np.clip(py, 0, H - 1)
    d_out, d_in = depth[py, px], depth[ys, xs]
    ok &= (is_int | ~obj[py, px]) & ((d_out <= 0) | ~np.isfinite(d_out) | (d_out > d_in + jump))
    xs, ys, m = xs[ok], ys[ok], m[ok]
    Kinv = np.linalg.inv(K)

    def ray(x, y):
        return np.stack([x, y, np.ones_like(x)], 1) @ Kinv.T @ R.T

    r0 = _unit(ray(xs.astype(np.float64), ys.astype(np.float64)))
    r1 = ray(xs + m[:, 0], ys + m[:, 1])
    n = _unit(r1 - np.einsum("ni,ni->n", r1, r0)[:, None] * r0)
    return np.stack([xs, ys], 1), n


def _crease_normals(cp: np.ndarray, cn: np.ndarray, surf: np.ndarray, sn: np.ndarray, crease: float,
                    radius: float) -> np.ndarray:
    """Contour normals with the box prior at creases: where the visible surface next to a contour
    point (the nearest surface sample within ``radius``) turns by more than ``crease`` from the
    contour normal, the outline is an edge whose hidden face is taken perpendicular to the visible
    one (the contour normal with its component along the visible normal removed)."""
    from scipy.spatial import cKDTree

    if len(cp) == 0 or len(surf) == 0:
        return cn
    d, i = cKDTree(surf).query(cp, k=1)
    nv = sn[i]
    c = np.einsum("ni,ni->n", cn, nv)
    edge = (d <= radius) & (c < math.cos(crease)) & (np.linalg.norm(nv, axis=1) > 0.5)
    out = cn.copy()
    out[edge] = _unit(cn[edge] - c[edge, None] * nv[edge])
    return out


@dataclass
class _View:
    """Contact samples of one view: points (N, 3), outward normals (N, 3), spread (N,): how far
    beyond the sample the surface may lie along its normal (one pixel footprint for contours, whose
    true edge lies between the last observed point and the next pixel; 0 for surface points)."""

    source: str
    points: np.ndarray
    normals: np.ndarray
    spread: np.ndarray
    eye: np.ndarray | None  # camera centre (view direction = ray to the point); None: straight down

    def view_dir(self, p: np.ndarray) -> np.ndarray:
        if self.eye is None:
            return np.broadcast_to(np.array([0.0, 0.0, -1.0]), p.shape)
        return _unit(p - self.eye)


def _rot_angle(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Rotation angle between R1 (3x3) and each of R2 (N x 3 x 3), parallel-jaw symmetric
    (a half turn about the approach is the same grasp)."""
    tr = np.einsum("ij,nij->n", R1, R2)  # trace(R1^T R2)
    tr_flip = tr - 2 * np.einsum("ij,nij->n", R1[:, :2], R2[:, :, :2])  # R2 @ diag(-1, -1, 1)
    ang = lambda t: np.arccos(np.clip((t - 1) / 2, -1, 1))  # noqa: E731
    return np.minimum(ang(tr), ang(tr_flip))


# --------------------------------------------------------------------------- the grasper


class AntipodalGrasper:
    """Antipodal grasp sampler on the camera and virtual top-down views (see the module docstring)."""

    name = "antipodal"
    kind = "grasper"
    capabilities = frozenset({"top_down", "deterministic"})
    Options = AntipodalOptions
    description = ("antipodal grasp sampler on the camera and a virtual top-down view of the RGB-D cloud, "
                   "friction cone, gripper width and collision checks")
    verified = ("ray-cast box on a table (best within 3 mm of centre, 5 deg off the narrow axis) and bar before "
                "a wall; no candidate's gripper boxes reach the table, wall or true solid; robosuite scenes "
                "checked against the MuJoCo geometry")

    def __init__(self, options: AntipodalOptions | None = None) -> None:
        self.options = options or AntipodalOptions()

    # ------------------------------------------------------------------ inputs and views
    def _inputs(self, rgbd: Any, mask: Any, top_k: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not isinstance(rgbd, RGBD):
            raise ValueError(f"rgbd: expected d2f_core.RGBD (rgb, depth in metres, camera), got "
                             f"{type(rgbd).__name__}")
        mask = check_mask(mask, rgbd.depth.shape, "mask")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k: expected an integer >= 1, got {top_k!r}")
        if not mask.any():
            raise ValueError("mask: is empty; segment the object first (True = object pixels)")
        valid = rgbd.valid
        if not (mask & valid).any():
            raise ValueError(f"mask: none of its {int(mask.sum())} pixels has valid depth (finite, > 0 "
                             "metres); check the depth image and that the mask matches it")
        ys, xs = np.nonzero(valid)
        pts = rgbd.camera.backproject(np.stack([xs, ys], -1).astype(np.float64),
                                      rgbd.depth[ys, xs].astype(np.float64))
        return pts, mask[ys, xs], mask & valid

    def _camera_view(self, rgbd: RGBD, obj_mask: np.ndarray, obj_pts: np.ndarray) -> _View:
        o = self.options
        cam = rgbd.camera
        eye = cam.T_world_cam[:3, 3]
        surf = _voxel_mean(obj_pts, o.voxel)[0]
        depth = np.where(rgbd.valid, rgbd.depth, 0.0)
        pix, cn = _contours(obj_mask, depth, cam.K, cam.T_world_cam[:3, :3], o.contour_jump)
        dz = depth[pix[:, 1], pix[:, 0]].astype(np.float64)
        cp = cam.backproject(pix.astype(np.float64), dz)
        foot = dz * 2.0 / (cam.K[0, 0] + cam.K[1, 1])  # one pixel, perpendicular to the ray
        sn = _pca_normals(surf, o.normal_neighbors, eye)
        cn = _crease_normals(cp, cn, surf, sn, o.crease_angle, 3 * o.voxel)
        return self._samples("camera", surf, sn, cp, cn, foot, eye)

    def _top_down_view(self, scene: np.ndarray, is_obj: np.ndarray, obj_pts: np.ndarray) -> _View:
        """Render the scene cloud from above (z-buffer, 3 x 3 splats) and sample what it sees."""
        from scipy.spatial import cKDTree

        o = self.options
        centre = obj_pts.mean(0)
        eye = np.array([centre[0], centre[1], obj_pts[:, 2].max() + o.top_down_height])
        obj_tree = cKDTree(obj_pts)
        spacing = float(np.median(obj_tree.query(obj_pts, k=2)[0][:, 1])) if len(obj_pts) > 1 else 0.0
        pixel = max(o.top_down_pixel, 1.2 * spacing)
        f = o.top_down_height / pixel
        half = float(np.max(np.linalg.norm(obj_pts[:, :2] - centre[:2], axis=1))) + 0.04
        n = 2 * int(math.ceil(half / pixel)) + 1
        K = np.array([[f, 0, (n - 1) / 2], [0, f, (n - 1) / 2], [0, 0, 1.0]])
        pc = (scene - eye) @ _R_TOP_DOWN  # world -> virtual camera: R^T (p - eye)
        z = pc[:, 2]
        win = zbuffer(pc, K, (n, n), splat=1)
        depth = np.where(win >= 0, z[np.maximum(win, 0)], 0.0)
        obj_img = (win >= 0) & is_obj[np.maximum(win, 0)]
        seen = np.unique(win[obj_img])
        surf = _voxel_mean(scene[seen], o.voxel)[0]
        pix, cn = _contours(obj_img, depth, K, _R_TOP_DOWN, o.contour_jump)
        cp = scene[win[pix[:, 1], pix[:, 0]]]
        if len(cp):
            # the winner of an outline pixel may be a higher point a little inside (its splat covers
            # the pixel): take the object point furthest out along the normal nearby instead
            near = obj_tree.query_ball_point(cp, 1.5 * pixel)
            for c, nb in enumerate(near):
                if nb:
                    q = obj_pts[nb]
                    cp[c] = q[np.argmax((q - cp[c]) @ cn[c])]
        # the edge lies up to one point spacing of the real camera's cloud beyond the outline point
        k = min(5, len(obj_pts))
        foot = obj_tree.query(cp, k=k)[0][:, 1:].mean(1) if k > 1 and len(cp) else np.zeros(len(cp))
        return self._samples("top-down", surf, _pca_normals(surf, o.normal_neighbors, eye), cp, cn, foot, None)

    def _samples(self, source: str, surf: np.ndarray, sn: np.ndarray, cp: np.ndarray, cn: np.ndarray,
                 foot: np.ndarray, eye: np.ndarray | None) -> _View:
        o = self.options
        cp, cn, foot = _voxel_mean(cp, o.voxel, cn, foot)
        pts = np.concatenate([surf, cp]) if len(cp) else surf
        nrm = np.concatenate([sn, _unit(cn)]) if len(cp) else sn
        spread = np.concatenate([np.zeros(len(surf)), foot]) if len(cp) else np.zeros(len(surf))
        if len(pts) > o.max_samples:
            keep = np.sort(np.random.default_rng(o.seed).choice(len(pts), o.max_samples, replace=False))
            pts, nrm, spread = pts[keep], nrm[keep], spread[keep]
        return _View(source, pts, nrm, spread, eye)

    # ------------------------------------------------------------------ pairs
    @staticmethod
    def _axis(view: _View, ij: np.ndarray) -> np.ndarray:
        """Closing axes (M, 3) of pairs, from sample i to j: along the mean of the contact normals
        (n_j - n_i), so the flat finger pads lie parallel to the contact faces."""
        return _unit(view.normals[ij[:, 1]] - view.normals[ij[:, 0]])

    def _pairs(self, view: _View, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Antipodal pairs whose expected extent along the closing axis (the samples' separation
        along it + half their spreads) is at most r: (i, j) indices (M, 2), that extent (M,),
        quality (M,). Antipodal: the line between the samples lies in both friction cones."""
        from scipy.spatial import cKDTree

        o = self.options
        P, N = view.points, view.normals
        if len(P) < 2:
            return np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0)
        ij = cKDTree(P).query_pairs(r, output_type="ndarray")
        if len(ij) == 0:
            return np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0)
        ij = ij[np.lexsort((ij[:, 1], ij[:, 0]))]
        d = P[ij[:, 1]] - P[ij[:, 0]]
        dist = np.linalg.norm(d, axis=1)
        ok = dist >= max(o.min_width, 1e-6)
        ij, d, dist = ij[ok], d[ok], dist[ok]
        u = d / dist[:, None]
        cmin = np.minimum(-np.einsum("ni,ni->n", N[ij[:, 0]], u), np.einsum("ni,ni->n", N[ij[:, 1]], u))
        cos_cone = math.cos(math.atan(o.friction_coef))
        ok = cmin >= cos_cone
        ij, d, cmin = ij[ok], d[ok], cmin[ok]
        ext = np.einsum("ni,ni->n", d, self._axis(view, ij)) + 0.5 * (view.spread[ij[:, 0]] + view.spread[ij[:, 1]])
        ok = (ext <= r) & (ext >= o.min_width)
        return ij[ok], ext[ok], (cmin[ok] - cos_cone) / max(1 - cos_cone, 1e-9)

    def _choose_pairs(self, view: _View, ij: np.ndarray, q: np.ndarray, centre_score) -> np.ndarray:
        """Indices into ij of up to num_pairs pairs, spread over the object: the best pair (prior =
        quality + centring) of each (1 cm midpoint cell, closing-axis direction) bucket, taken
        round-robin over 3 cm midpoint cells (every cell's best, then every cell's second, ...)."""
        o = self.options
        P = view.points
        mid = 0.5 * (P[ij[:, 0]] + P[ij[:, 1]])
        u = self._axis(view, ij)
        u = np.where((u[:, 2:3] < 0) | ((u[:, 2:3] == 0) & (u[:, :1] < 0)), -u, u)  # axis sign is free
        prior = o.weight_quality * q + o.weight_center * centre_score(mid, u, False)
        cells = np.floor(mid / 0.01).astype(np.int64)
        dirs = np.floor((u + 1.0) / 0.25).astype(np.int64)  # ~15 degree direction cells
        order = np.lexsort((np.arange(len(prior)), -prior))
        _, first = np.unique(np.concatenate([cells, dirs], 1)[order], axis=0, return_index=True)
        best = order[np.sort(first)]  # best pair of each bucket, in prior order
        _, coarse = np.unique(np.floor(mid[best] / 0.03).astype(np.int64), axis=0, return_inverse=True)
        coarse = coarse.ravel()
        rank = np.zeros(len(best), np.int64)  # rank of each bucket within its coarse cell
        seen: dict[int, int] = {}
        for n, c in enumerate(coarse):
            rank[n] = seen.get(c, 0)
            seen[c] = rank[n] + 1
        return best[np.lexsort((np.arange(len(best)), rank))][:o.num_pairs]

    # ------------------------------------------------------------------ gripper model
    def _boxes(self, width: np.ndarray, push: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """(centre (M, 3), half size (M, 3)) of the finger and palm boxes in the pair's frame
        (origin at the contact midpoint, x = closing, z = approach) for fingertips at z = push.

        Grown by the spacing of the cloud each is checked against (fingers: collision_voxel on
        every side but the inner face; palm: twice that), so a corner cannot poke between samples.
        """
        o = self.options
        M = len(width)
        L, t, e, ep = o.finger_length, o.finger_thickness, o.collision_voxel, 2 * o.collision_voxel
        fx = width / 2 + (t + e) / 2
        fh = np.tile([(t + e) / 2, o.finger_depth / 2 + e, L / 2 + e], (M, 1))
        zf = np.full(M, push - L / 2)
        left = (np.stack([-fx, np.zeros(M), zf], 1), fh)
        right = (np.stack([fx, np.zeros(M), zf], 1), fh)
        palm = (np.tile([0.0, 0.0, push - L - o.palm_height / 2], (M, 1)),
                np.tile([o.palm_width / 2 + ep, o.palm_depth / 2 + ep, o.palm_height / 2 + ep], (M, 1)))
        return [left, right, palm]

    def _collide(self, tree, cloud_obj: np.ndarray, M: np.ndarray, R: np.ndarray, width: np.ndarray,
                 part: slice) -> tuple[np.ndarray, np.ndarray]:
        """For each candidate (frame R (M,3,3) columns x y z at M) and each push depth:
        collision (C, P bool) and clearance to non-object points (C, P metres, capped), of the
        boxes ``part`` (fingers: slice(0, 2), palm: slice(2, 3)) against one cloud."""
        o = self.options
        pushes = o.push_depths
        C, npush = len(M), len(pushes)
        coll = np.zeros((C, npush), bool)
        clear = np.full((C, npush), o.clearance_cap)
        if C == 0:
            return coll, clear
        allb = [self._boxes(width, p)[part] for p in pushes]
        lo = np.min([c - h for bs in allb for c, h in bs], 0)
        hi = np.max([c + h for bs in allb for c, h in bs], 0)
        centre_local = 0.5 * (lo + hi)
        radius = 0.5 * np.linalg.norm(hi - lo, axis=1) + o.clearance_cap
        centres = M + np.einsum("nij,nj->ni", R, centre_local)
        lists = tree.query_ball_point(centres, radius)
        lens = np.array([len(l) for l in lists])
        if lens.sum() == 0:
            return coll, clear
        idx = np.concatenate([np.asarray(l, np.int64) for l in lists])
        cand = np.repeat(np.arange(C), lens)
        q = np.einsum("nji,nj->ni", R[cand], tree.data[idx] - M[cand])  # R^T (p - M)
        other = ~cloud_obj[idx]
        for k, boxes in enumerate(allb):
            dmin = np.full(len(idx), np.inf)
            hit = np.zeros(len(idx), bool)
            for c, h in boxes:
                e = np.abs(q - c[cand]) - h[cand]
                hit |= np.all(e <= 0, axis=1)
                dmin = np.minimum(dmin, np.linalg.norm(np.maximum(e, 0), axis=1))
            coll[:, k] = np.bincount(cand, hit, C) > 0
            dm = np.where(other, dmin, o.clearance_cap)
            np.minimum.at(clear[:, k], cand, dm)
        return coll, np.minimum(clear, o.clearance_cap)

    # ------------------------------------------------------------------ main
    def propose(self, rgbd: RGBD, mask: np.ndarray, *, top_k: int = 40) -> list[Grasp]:
        from scipy.spatial import cKDTree

        o = self.options
        pts, pt_obj, obj_mask = self._inputs(rgbd, mask, top_k)
        obj_pts = pts[pt_obj]
        # reach of the gripper from the object: the scene beyond it cannot collide
        reach = (o.finger_length + o.palm_height + max(o.palm_width / 2, o.max_width / 2 + o.finger_thickness)
                 + max(o.palm_depth, o.finger_depth) + max(o.push_depths) + o.clearance_cap)
        lo, hi = obj_pts.min(0) - reach, obj_pts.max(0) + reach
        near = np.all((pts >= lo) & (pts <= hi), axis=1)
        scene, scene_obj = pts[near], pt_obj[near]

        # object centre: the middle of the observed points' extent along their principal axes (a
        # partial view's centroid leans towards the camera); radius: half that box's longest side
        obj_vox = _voxel_mean(obj_pts, o.voxel)[0]
        mean = obj_vox.mean(0)
        axes = np.linalg.eigh(np.cov((obj_vox - mean).T) if len(obj_vox) > 3 else np.eye(3))[1]
        local = (obj_vox - mean) @ axes
        lo_l, hi_l = local.min(0), local.max(0)
        centre = mean + axes @ (0.5 * (lo_l + hi_l))
        radius = max(0.5 * float(np.max(hi_l - lo_l)), 1e-3)

        def centre_score(p: np.ndarray, v: np.ndarray, along: bool) -> np.ndarray:
            """1 - offset of the object centre from p / radius, clipped at 0. The offset is taken
            along v (grasp y: the one direction neither the jaws nor the push depth set) when
            ``along``, else perpendicular to v (a closing axis, before the approach is known)."""
            off = centre - p
            c = np.einsum("ni,ni->n", off, v)
            d = np.abs(c) if along else np.linalg.norm(off - c[:, None] * v, axis=1)
            return np.clip(1.0 - d / radius, 0.0, 1.0)

        fine, fine_obj = _voxel_mean(scene, o.collision_voxel, scene_obj.astype(np.float64))
        coarse, coarse_obj = _voxel_mean(scene, 2 * o.collision_voxel, scene_obj.astype(np.float64))
        fine_tree, coarse_tree = cKDTree(fine), cKDTree(coarse)
        fine_obj, coarse_obj = fine_obj > 0.5, coarse_obj > 0.5

        views = [self._camera_view(rgbd, obj_mask, obj_pts), self._top_down_view(scene, scene_obj, obj_pts)]
        r_pair = o.max_width - o.margin
        found: dict[str, list[tuple[float, Grasp]]] = {}
        n_pairs = 0
        for view in views:
            ij, dist, q = self._pairs(view, r_pair)
            n_pairs += len(ij)
            found[view.source] = []
            if len(ij) == 0:
                continue
            sel = self._choose_pairs(view, ij, q, centre_score)
            ij, dist, q = ij[sel], dist[sel], q[sel]
            grasps = self._candidates(rgbd, view, ij, dist, q, centre_score, (fine_tree, fine_obj),
                                      (coarse_tree, coarse_obj))
            found[view.source] = self._nms(grasps, top_k)
        if n_pairs == 0:
            self._too_wide(views)
            return []

        cam, top = found["camera"], found["top-down"]
        if top_k == 1:  # one grasp: the better of the two views' best
            n_top = int(bool(top) and (not cam or top[0][0] > cam[0][0]))
        else:
            n_top = top_k // 2
        take_top = min(len(top), max(n_top, top_k - len(cam)))
        take_cam = min(len(cam), top_k - take_top)
        out = cam[:take_cam] + top[:take_top]
        out.sort(key=lambda sg: -sg[0])  # stable: camera first on ties
        return [g for _, g in out]

    def _hidden(self, rgbd: RGBD, O: np.ndarray, R: np.ndarray, width: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Fraction (C,) of each finger volume the real camera cannot see (something in front of it
        by more than 5 mm): space the collision check could not clear. Only for ``rows``; grasp
        frames at O (C, 3) with rotations R (C, 3, 3)."""
        o = self.options
        out = np.zeros(len(O))
        if len(rows) == 0:
            return out
        g = np.linspace(-0.5, 0.5, 3)
        grid = np.stack(np.meshgrid(g, g, np.linspace(0.0, 1.0, 6), indexing="ij"), -1).reshape(-1, 3)
        pts = []
        for side in (-1.0, 1.0):
            local = np.zeros((len(rows), len(grid), 3))
            local[..., 0] = side * (width[rows, None] / 2 + o.finger_thickness * (0.5 + grid[None, :, 0]))
            local[..., 1] = o.finger_depth * grid[None, :, 1]
            local[..., 2] = -o.finger_length * grid[None, :, 2]
            pts.append(np.einsum("nij,nkj->nki", R[rows], local) + O[rows, None])
        P = np.concatenate(pts, 1)  # (n, 2 * len(grid), 3)
        uv, z = rgbd.camera.project(P.reshape(-1, 3))
        H, W = rgbd.depth.shape
        x, y = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
        inimg = (x >= 0) & (x < W) & (y >= 0) & (y < H) & (z > 0)
        d = np.zeros(len(z))
        d[inimg] = rgbd.depth[y[inimg], x[inimg]]
        occluded = inimg & np.isfinite(d) & (d > 0) & (d < z - 0.005)
        out[rows] = occluded.reshape(len(rows), -1).mean(1)
        return out

    def _candidates(self, rgbd: RGBD, view: _View, ij, dist, q, centre_score, fine, coarse
                    ) -> list[tuple[float, Grasp]]:
        o = self.options
        P, S = view.points, view.spread
        u = self._axis(view, ij)
        # midpoint of the expected edges, half a spread beyond each sample
        mid = 0.5 * (P[ij[:, 0]] + P[ij[:, 1]]) + 0.25 * (S[ij[:, 1]] - S[ij[:, 0]])[:, None] * u
        vdir = view.view_dir(mid)
        a0 = vdir - np.einsum("ni,ni->n", vdir, u)[:, None] * u
        weak = np.linalg.norm(a0, axis=1) < 0.1  # closing axis along the view: any perpendicular
        if weak.any():
            alt = np.cross(u[weak], [0.0, 0.0, 1.0])
            alt[np.linalg.norm(alt, axis=1) < 0.1] = np.cross(u[weak], [1.0, 0.0, 0.0])[
                np.linalg.norm(alt, axis=1) < 0.1]
            a0[weak] = alt
        a0 = _unit(a0)
        b0 = np.cross(u, a0)
        th = 2 * np.pi * np.arange(o.num_approaches) / o.num_approaches
        A = _unit(np.cos(th)[None, :, None] * a0[:, None] + np.sin(th)[None, :, None] * b0[:, None])  # (n, k, 3)
        cos_v = np.einsum("nki,ni->nk", A, vdir)
        pi_, ki = np.nonzero(cos_v >= math.cos(o.max_approach_angle) - 1e-9)
        if len(pi_) == 0:
            return []
        Z, X = A[pi_, ki], u[pi_]
        R = np.stack([X, np.cross(Z, X), Z], 2)  # columns x y z
        M, width = mid[pi_], dist[pi_] + o.margin
        c_f, d_f = self._collide(fine[0], fine[1], M, R, width, slice(0, 2))
        c_p, d_p = self._collide(coarse[0], coarse[1], M, R, width, slice(2, 3))
        # both contacts on the finger pads: within finger_depth across, and between the fingertips
        # (2 mm inside) and the finger root along the approach
        delta = P[ij[pi_, 1]] - P[ij[pi_, 0]]
        dz = 0.5 * np.abs(np.einsum("ni,ni->n", delta, Z))
        dy = 0.5 * np.abs(np.einsum("ni,ni->n", delta, R[:, :, 1]))
        push = np.asarray(o.push_depths)[None, :]
        pads = (push >= dz[:, None] + 0.002) & (push + dz[:, None] <= o.finger_length) & (
            dy[:, None] <= o.finger_depth / 2)
        free = ~(c_f | c_p) & pads
        clear = np.minimum(d_f, d_p)
        ok = free.any(1)
        order = np.argsort(-np.asarray(o.push_depths), kind="stable")
        free_sorted = free[:, order]
        k_best = order[np.argmax(free_sorted, axis=1)]
        rows = np.nonzero(ok)[0]
        out = []
        cs = centre_score(M, R[:, :, 1], True)
        push = np.asarray(o.push_depths)[k_best]
        hidden = self._hidden(rgbd, M + push[:, None] * Z, R, width, rows)
        for r in rows:
            k = k_best[r]
            clear_score = clear[r, k] / o.clearance_cap * (1.0 - hidden[r])
            score = (o.weight_quality * q[pi_[r]] + o.weight_clearance * clear_score
                     + o.weight_center * cs[r] + o.weight_approach * max(0.0, float(cos_v[pi_[r], ki[r]])))
            T = np.eye(4)
            T[:3, :3] = R[r]
            T[:3, 3] = M[r] + push[r] * Z[r]
            out.append((float(score), Grasp(T_world_grasp=T, width=float(width[r]), score=float(score),
                                            source=view.source)))
        return out

    def _nms(self, grasps: list[tuple[float, Grasp]], limit: int) -> list[tuple[float, Grasp]]:
        o = self.options
        order = sorted(range(len(grasps)), key=lambda i: (-grasps[i][0], i))
        kept: list[tuple[float, Grasp]] = []
        pos = np.zeros((0, 3))
        rot = np.zeros((0, 3, 3))
        for i in order:
            g = grasps[i][1]
            p, R = g.T_world_grasp[:3, 3], g.T_world_grasp[:3, :3]
            if len(kept):
                close = (np.linalg.norm(pos - p, axis=1) < o.nms_distance) & (_rot_angle(R, rot) < o.nms_angle)
                if close.any():
                    continue
            kept.append(grasps[i])
            pos, rot = np.vstack([pos, p]), np.concatenate([rot, R[None]])
            if len(kept) >= limit:
                break
        return kept

    def _too_wide(self, views: list[_View]) -> None:
        """No antipodal pair fits the gripper: raise naming max_width if wider ones exist."""
        o = self.options
        widest = []
        for view in views:
            _, dist, _ = self._pairs(view, 10.0)
            if len(dist):
                widest.append(float(dist.min()))
        if widest:
            w = min(widest)
            raise ValueError(f"max_width: the object is too wide for the gripper: its narrowest antipodal contact "
                             f"pair is {w * 1000:.1f} mm apart + margin {o.margin * 1000:.1f} mm = "
                             f"{(w + o.margin) * 1000:.1f} mm > max_width {o.max_width * 1000:.1f} mm; raise "
                             "grasper.options.max_width if the gripper opens wider, or use another grasper")


@hookimpl
def d2f_register(register):
    register(Manifest.of(AntipodalGrasper))
