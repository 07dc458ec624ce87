"""``anygrasp`` grasper: the AnyGrasp SDK (graspnet/anygrasp_sdk) on the RGB-D point cloud.

Install (the SDK is a licensed binary, not on PyPI)::

    pip install 'dream2flow[anygrasp]'              # torch, open3d, scipy, tqdm (the SDK's requirements)
    # graspnetAPI pins old packages (and the retired 'sklearn' name); install it as the SDK says:
    SKLEARN_ALLOW_DEPRECATED_SKLEARN_PACKAGE_INSTALL=True pip install graspnetAPI
    # MinkowskiEngine (the SDK's fork) and pointnet2: see https://github.com/graspnet/anygrasp_sdk#installation
    git clone https://github.com/graspnet/anygrasp_sdk && cd anygrasp_sdk/grasp_detection
    cp gsnet_versions/gsnet.cpython-311-x86_64-linux-gnu.so gsnet.so     # your Python version
    cp ../license_registration/lib_cxx_versions/lib_cxx.cpython-311-x86_64-linux-gnu.so lib_cxx.so
    export ANYGRASP_DIR=$PWD

Licence: AnyGrasp only runs with a licence issued by its authors for one machine. Get the
machine's feature id with ``../license_registration/license_checker -f`` (drop a trailing "%"),
apply with the form linked in the SDK's README (https://forms.gle/XVV3Eip8njTYJEBo6), unzip the
licence you receive as ``$ANYGRASP_DIR/license/`` (licenseCfg.json, NAME.lic, NAME.public_key,
NAME.signature) and check it with ``license_checker -c license/licenseCfg.json``. The checkpoint
they send (``checkpoint_detection.tar``) is ``grasper.options.checkpoint``. The SDK reads
``license/`` from the current directory, so the adapter runs it from ``$ANYGRASP_DIR``.

Conversions at this adapter's edge:

* points: the RGB-D frame's valid pixels (world frame) near the masked object (its bounding box
  grown by ``context_margin``, so collision checking sees the surroundings) are moved into the
  view's camera frame (``T_cam_world``), float32 metres; colours float32 0-1 (the SDK's input);
  ``lims`` = the object's bounding box in that frame grown by ``lims_margin``.
* views: the real camera, and (``virtual_top_down``) a virtual camera ``top_down_height`` above
  the object looking straight down (world -z), for more vertical grasps (Dream2Flow asks
  AnyGrasp for 20 grasps from each). ``top_k`` is split between the views. AnyGrasp is trained on
  single-view partial clouds, so the virtual view gets what that camera would see, not the whole
  cloud: the cloud is z-buffered in a virtual image (``d2f_core.geometry.zbuffer``, the same code
  as the antipodal grasper's top-down view: 3 x 3 pixel splats, nearest point per pixel) whose
  pixel is ``top_down_pixel`` at the object's top (at least 1.2 x the real camera's pixel
  footprint there, so surfaces have no holes), and a point more than ``occlusion_tolerance``
  behind the surface shown at its pixel is dropped: points under an overhang (a shelf, a lid,
  the robot) are culled, the visible surfaces keep all their points.
* grasp frame: graspnetAPI's gripper frame has x = approach, y = closing direction, z = x cross y,
  origin at the grasp point with the fingertips ``depth`` further along x. Ours (d2f_core.Grasp)
  has z = approach, x = closing, origin between the fingertips, so::

      R_ours = R_anygrasp @ M,   M = [[0, 0, 1],     (our x = their y, our y = their z,
                                      [1, 0, 0],      our z = their x; det M = +1)
                                      [0, 1, 0]]
      p_ours = t + depth * R_anygrasp[:, 0]
      T_world_grasp = T_world_view @ [[R_ours, p_ours], [0, 0, 0, 1]]

* mask: grasps whose grasp point lies farther than ``max_distance_to_object`` from every masked
  object point are dropped (the SDK's own objectness mask does not know which object we want).
* output: best first by AnyGrasp's score, NMS'd per view, at most ``top_k``; ``source`` is
  "camera" or "top-down"; widths are clipped to ``max_gripper_width``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import RGBD, DataError, Grasp, Manifest, hookimpl
from d2f_core.devices import Needs
from d2f_core.geometry import R_TOP_DOWN, zbuffer
from d2f_core.registry import PluginUnavailableError
from d2f_core.validate import check_mask
from d2f_plugins._checkout import add_to_path, in_dir

__all__ = ["AnyGraspOptions", "AnyGraspGrasper", "M_ANYGRASP_TO_OURS", "anygrasp_to_ours", "top_down_camera",
           "visible_from_top"]

UPSTREAM = "https://github.com/graspnet/anygrasp_sdk"
INSTALL = (f"install the AnyGrasp SDK and graspnetAPI ({UPSTREAM}#installation), copy gsnet.so and lib_cxx.so "
           "for your Python into grasp_detection/, apply for a licence with the machine's feature id "
           "(license_registration/license_checker -f; form in the SDK README), unzip it as "
           "grasp_detection/license/ and export ANYGRASP_DIR=/path/to/anygrasp_sdk/grasp_detection")

M_ANYGRASP_TO_OURS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""Columns: our x, y, z axes written in AnyGrasp's gripper frame (x approach, y closing)."""


class AnyGraspOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(default=None, description=(
        "the AnyGrasp detection checkpoint (checkpoint_detection.tar) sent with the licence"))
    max_gripper_width: float = Field(default=0.08, gt=0.0, le=0.1, description=(
        "gripper's maximum opening, metres (AnyGrasp allows <= 0.1; Franka hand 0.08)"))
    gripper_height: float = Field(default=0.03, gt=0.0, description="finger height, metres (AnyGrasp cfgs)")
    top_down_grasp: bool = Field(default=False, description="AnyGrasp's own top-down-only mode (cfgs flag)")
    virtual_top_down: bool = Field(default=True, description=(
        "also ask for grasps from a virtual camera looking straight down at the cloud (Dream2Flow: 20 + 20)"))
    top_down_height: float = Field(default=0.5, gt=0.0, description=(
        "height of the virtual top-down camera above the object's highest point, metres"))
    top_down_pixel: float = Field(default=0.003, gt=0.0, description=(
        "pixel size of the virtual top-down view at the object's top, metres (raised to 1.2 x the real "
        "camera's pixel footprint there); the cloud is z-buffered at this resolution"))
    occlusion_tolerance: float = Field(default=0.01, gt=0.0, description=(
        "virtual top-down view: a point more than this behind the surface the z-buffer shows at its pixel "
        "is hidden (culled), metres"))
    context_margin: float = Field(default=0.10, ge=0.0, description=(
        "scene points within this distance of the object's bounding box are given to AnyGrasp "
        "(collision checking), metres"))
    lims_margin: float = Field(default=0.05, ge=0.0, description=(
        "AnyGrasp's output workspace (lims) is the object's bounding box grown by this, metres"))
    max_distance_to_object: float = Field(default=0.02, ge=0.0, description=(
        "grasps whose grasp point is farther than this from the masked object's points are dropped, metres"))
    apply_object_mask: bool = Field(default=True, description="AnyGrasp's objectness filtering (SDK default)")
    collision_detection: bool = Field(default=True, description="AnyGrasp's collision detection (SDK default)")
    dense_grasp: bool = Field(default=False, description="AnyGrasp's dense prediction mode (SDK default off)")

    needs: ClassVar[Needs] = Needs(
        weights=("checkpoint",), gpu_gb=4.0, disk_gb=0.1, cuda_only=True,
        source="checkpoint_detection.tar and a machine licence from the AnyGrasp authors "
               "(https://github.com/graspnet/anygrasp_sdk#license-registration)")


def _sdk_dir() -> Path | None:
    env = os.environ.get("ANYGRASP_DIR")
    if not env:
        return None
    d = Path(env).expanduser()
    if any(d.glob("gsnet*.so")) or (d / "gsnet.py").is_file():
        return d
    return None


def _importable() -> bool:
    if "gsnet" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("gsnet") is not None
    except (ImportError, ValueError):
        return False


def _available() -> str | None:
    d = _sdk_dir()
    if os.environ.get("ANYGRASP_DIR") and d is None:
        return f"ANYGRASP_DIR={os.environ['ANYGRASP_DIR']} holds no gsnet.so; {INSTALL}"
    if d is None and not _importable():
        return f"needs the AnyGrasp SDK (gsnet, not on PyPI): pip install 'dream2flow[anygrasp]'; then {INSTALL}"
    if d is not None and not (d / "license").is_dir():
        return (f"no AnyGrasp licence in {d / 'license'}: get the machine's feature id with license_checker -f, "
                "apply at https://forms.gle/XVV3Eip8njTYJEBo6 and unzip the licence there")
    return None


def anygrasp_to_ours(R: np.ndarray, t: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """AnyGrasp grasps (rotations n x 3 x 3, translations n x 3, depths n) in a view frame ->
    n x 4 x 4 poses in our gripper convention in the same frame (see the module docstring)."""
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    T = np.tile(np.eye(4), (len(R), 1, 1))
    T[:, :3, :3] = R @ M_ANYGRASP_TO_OURS
    T[:, :3, 3] = np.asarray(t, np.float64).reshape(-1, 3) + np.asarray(depth, np.float64).reshape(-1, 1) * R[:, :, 0]
    # re-orthonormalise (float32 rotations from the SDK)
    U, _, Vt = np.linalg.svd(T[:, :3, :3])
    T[:, :3, :3] = U @ Vt
    return T


def top_down_camera(points_world: np.ndarray, height: float) -> np.ndarray:
    """T_world_cam of a virtual camera ``height`` above the points' top, over their centre,
    looking straight down (OpenCV axes: z = world -z, x = world +x, y = world -y)."""
    c = points_world.mean(0)
    T = np.eye(4)
    T[:3, :3] = R_TOP_DOWN
    T[:3, 3] = [c[0], c[1], float(points_world[:, 2].max()) + height]
    return T


def visible_from_top(points_world: np.ndarray, T_world_view: np.ndarray, pixel: float, top_height: float,
                     tolerance: float = 0.01) -> np.ndarray:
    """Indices of the points a virtual camera at ``T_world_view`` (looking straight down) sees.

    The cloud is z-buffered (:func:`d2f_core.geometry.zbuffer`: 3 x 3 splats, nearest point per
    pixel) in an image whose pixels are ``pixel`` metres wide ``top_height`` below the camera and
    which holds every point; a point is visible when it is at most ``tolerance`` metres behind the
    surface the z-buffer shows at its own pixel. (Keeping only the z-buffer's winners, as the
    antipodal grasper's sampler does, would also thin the cloud to one point per pixel and drop
    outline points, which AnyGrasp needs for grasp widths.)"""
    eye = T_world_view[:3, 3]
    pc = (np.asarray(points_world, np.float64) - eye) @ T_world_view[:3, :3]  # world -> view
    f = top_height / pixel
    front = pc[:, 2] > 1e-3
    if not front.any():
        return np.zeros(0, np.int64)
    half = float(np.max(np.abs(pc[front, :2]) / pc[front, 2:3] * f)) + 2.0
    n = min(2 * int(np.ceil(half)) + 1, 4097)
    K = np.array([[f, 0.0, (n - 1) / 2], [0.0, f, (n - 1) / 2], [0.0, 0.0, 1.0]])
    win = zbuffer(pc, K, (n, n), splat=1)
    surface = np.where(win >= 0, pc[np.maximum(win, 0), 2], np.inf)
    idx = np.nonzero(front)[0]
    u = np.clip(np.rint(f * pc[idx, 0] / pc[idx, 2] + K[0, 2]).astype(np.int64), 0, n - 1)
    v = np.clip(np.rint(f * pc[idx, 1] / pc[idx, 2] + K[1, 2]).astype(np.int64), 0, n - 1)
    return idx[pc[idx, 2] <= surface[v, u] + tolerance]


def _field(gg: Any, name: str) -> np.ndarray:
    v = getattr(gg, name)
    return np.asarray(v() if callable(v) else v)


def _inverse(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


class AnyGraspGrasper:
    """Grasps from AnyGrasp (see the module docstring)."""

    name = "anygrasp"
    kind = "grasper"
    capabilities = frozenset({"needs_weights", "top_down", "deterministic"})
    Options = AnyGraspOptions
    extra, install = "anygrasp", INSTALL
    available = staticmethod(_available)
    description = "AnyGrasp SDK grasps (camera + virtual top-down view), licensed binary"
    verified = ("stand-in gsnet + graspnetAPI following the SDK's documented API (tests/standins/anygrasp): "
                "grasper checks; frame conversion and camera-to-world checked with known matrices")

    def __init__(self, anygrasp: Any, options: AnyGraspOptions | None = None, sdk_dir: Path | None = None) -> None:
        self.options = options or AnyGraspOptions()
        self.anygrasp = anygrasp
        self.sdk_dir = sdk_dir

    def _view(self, T_world_view: np.ndarray, pts_w: np.ndarray, cols: np.ndarray, obj_w: np.ndarray,
              source: str) -> list[Grasp]:
        o = self.options
        T_view_world = _inverse(T_world_view)
        pts = (pts_w @ T_view_world[:3, :3].T + T_view_world[:3, 3]).astype(np.float32)
        obj = obj_w @ T_view_world[:3, :3].T + T_view_world[:3, 3]
        lo, hi = obj.min(0) - o.lims_margin, obj.max(0) + o.lims_margin
        lims = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), max(0.0, float(lo[2])), float(hi[2])]
        with in_dir(self.sdk_dir):
            out = self.anygrasp.get_grasp(pts, cols, lims=lims, apply_object_mask=o.apply_object_mask,
                                          dense_grasp=o.dense_grasp, collision_detection=o.collision_detection)
        gg = out[0] if isinstance(out, tuple) else out
        if gg is None or len(gg) == 0:
            return []
        gg = gg.nms()
        sorted_gg = gg.sort_by_score()
        gg = sorted_gg if sorted_gg is not None else gg
        t, R = _field(gg, "translations"), _field(gg, "rotation_matrices")
        w, d, s = _field(gg, "widths"), _field(gg, "depths"), _field(gg, "scores")
        near = np.array([np.min(np.linalg.norm(obj - ti, axis=1)) <= o.max_distance_to_object for ti in t], bool)
        T = T_world_view @ anygrasp_to_ours(R, t, d)
        out_grasps = [Grasp(T_world_grasp=T[i], width=float(min(max(w[i], 0.0), o.max_gripper_width)),
                            score=float(s[i]), source=source) for i in np.nonzero(near)[0]]
        out_grasps.sort(key=lambda g: -g.score)
        return out_grasps

    def propose(self, rgbd: RGBD, mask: np.ndarray, *, top_k: int = 40) -> list[Grasp]:
        if not isinstance(rgbd, RGBD):
            raise ValueError(f"rgbd: expected d2f_core.RGBD (rgb, depth in metres, camera), got {type(rgbd).__name__}")
        mask = check_mask(mask, rgbd.depth.shape, "mask")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k: expected an integer >= 1, got {top_k!r}")
        if not mask.any():
            raise ValueError("mask: is empty; segment the object first (True = object pixels)")
        obj_w, _ = rgbd.point_cloud(mask)
        if len(obj_w) == 0:
            raise ValueError(f"mask: none of its {int(mask.sum())} pixels has valid depth (finite, > 0 metres)")
        pts_w, rgb = rgbd.point_cloud()
        o = self.options
        lo, hi = obj_w.min(0) - o.context_margin, obj_w.max(0) + o.context_margin
        near = np.all((pts_w >= lo) & (pts_w <= hi), axis=1)
        pts_w, cols = pts_w[near], (rgb[near].astype(np.float32) / 255.0)
        views = [("camera", rgbd.camera.T_world_cam, pts_w, cols)]
        if o.virtual_top_down:
            T_top = top_down_camera(obj_w, o.top_down_height)
            cam = rgbd.camera
            zs = rgbd.depth[mask & rgbd.valid].astype(np.float64)
            footprint = float(np.median(zs)) * 2.0 / (cam.K[0, 0] + cam.K[1, 1]) if len(zs) else 0.0
            seen = visible_from_top(pts_w, T_top, max(o.top_down_pixel, 1.2 * footprint), o.top_down_height,
                                    o.occlusion_tolerance)
            views.append(("top-down", T_top, pts_w[seen], cols[seen]))
        quota = [top_k // len(views) + (1 if i < top_k % len(views) else 0) for i in range(len(views))]
        per_view = [self._view(T, p, c, obj_w, src) for src, T, p, c in views]
        chosen = [g for gs, q in zip(per_view, quota) for g in gs[:q]]
        spare = [g for gs, q in zip(per_view, quota) for g in gs[q:]]  # a view with too few: fill from the other
        chosen += sorted(spare, key=lambda g: -g.score)[: top_k - len(chosen)]
        return sorted(chosen, key=lambda g: -g.score)[:top_k]


def _factory(options: AnyGraspOptions | None, ctx: Any = None) -> AnyGraspGrasper:
    options = options or AnyGraspOptions()
    if not options.checkpoint:
        raise PluginUnavailableError("grasper plugin 'anygrasp' needs weights: set grasper.options.checkpoint to "
                                     "the AnyGrasp checkpoint_detection.tar sent with your licence")
    ckpt = Path(options.checkpoint).expanduser().resolve()
    if not ckpt.is_file():
        raise DataError(f"grasper.options.checkpoint: {ckpt} not found; give the AnyGrasp checkpoint_detection.tar")
    d = _sdk_dir()
    if d is not None:
        add_to_path(d.resolve())
    try:
        gsnet = importlib.import_module("gsnet")
    except ImportError as e:
        raise PluginUnavailableError(f"grasper plugin 'anygrasp' cannot import gsnet ({e}); {INSTALL}") from None
    cfgs = SimpleNamespace(checkpoint_path=str(ckpt), max_gripper_width=float(options.max_gripper_width),
                           gripper_height=float(options.gripper_height), top_down_grasp=bool(options.top_down_grasp),
                           debug=False)
    anygrasp = gsnet.AnyGrasp(cfgs)
    sdk = d.resolve() if d is not None else None
    with in_dir(sdk):
        try:
            anygrasp.load_net()
        except (Exception, SystemExit) as e:  # licence failures come from the binary
            raise PluginUnavailableError(f"grasper plugin 'anygrasp': AnyGrasp load_net failed ({type(e).__name__}: "
                                         f"{e}); check the licence in {sdk or 'the working directory'}/license "
                                         "(license_checker -c license/licenseCfg.json) and the checkpoint") from None
    return AnyGraspGrasper(anygrasp, options, sdk)


@hookimpl
def d2f_register(register):
    register(Manifest.of(AnyGraspGrasper, factory=_factory))
