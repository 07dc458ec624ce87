"""Offscreen MuJoCo rendering: RGB, metric depth and per-geom segmentation of one fixed camera.

Two OpenGL passes per frame at most: a colour pass (RGB) and an id-colour pass whose depth
buffer gives the metric depth and whose colours give the segmentation (the same scheme
``mujoco.Renderer`` uses for depth). Shadows and reflections are off (speed; the issue's
measurements). Images come out top row first (the GL buffer is flipped on readout).

Geom groups (and flex groups, the same numbers) decide what is drawn: robosuite puts visual geoms in group 1 and collision geoms in
group 0; the world moves the robot's visual geoms to :data:`ROBOT_GROUP` so that the oracle can
hide the robot, and keeps calibration markers in :data:`MARKER_GROUP` (drawn only by the probe).
"""

from __future__ import annotations

import atexit
import weakref
from dataclasses import dataclass

import numpy as np

__all__ = ["VISUAL_GROUP", "ROBOT_GROUP", "MARKER_GROUP", "Frame", "SimRenderer"]

_LIVE: "weakref.WeakSet[SimRenderer]" = weakref.WeakSet()
_HOOKED = False


def _close_all() -> None:
    """Free every live GL context before mujoco's EGL atexit hook terminates the display (LIFO)."""
    for r in list(_LIVE):
        r.close()

VISUAL_GROUP = 1
ROBOT_GROUP = 3
MARKER_GROUP = 5


@dataclass
class Frame:
    """One rendered frame: rgb uint8 H x W x 3, depth float32 H x W metres (0 = nothing drawn),
    geom int32 H x W (MuJoCo geom id per pixel; ``model.ngeom + f`` for flex ``f``; -1 = nothing
    drawn). Missing passes are None."""

    rgb: np.ndarray | None
    depth: np.ndarray | None
    geom: np.ndarray | None


class SimRenderer:
    """Renders one MuJoCo model from a fixed camera at a fixed size (any MjData of that model)."""

    def __init__(self, model, width: int, height: int, camera_id: int) -> None:
        import mujoco

        self._mj = mujoco
        self.model = model
        self.width, self.height = int(width), int(height)
        # the offscreen framebuffer must be at least the image size; it is a plain model field
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.height)
        from d2f_core.gl import gl_context_class

        global _HOOKED
        # the context class of the backend chosen in d2f_core/gl.py, not the one MuJoCo fixed at its
        # own import (which may have run first, with MUJOCO_GL unset: GLFW, failing headless)
        context_class = gl_context_class()
        self._gl = context_class(self.width, self.height) if context_class is not None else None
        if self._gl is not None:
            self._gl.make_current()
        if not _HOOKED:  # after the first context, so it runs before the EGL display is terminated
            atexit.register(_close_all)
            _HOOKED = True
        _LIVE.add(self)
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model=model, maxgeom=10000)
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._cam.fixedcamid = int(camera_id)
        self._opt = mujoco.MjvOption()
        self._opt.sitegroup[:] = 0  # no sites (grip-site markers etc.)
        self._opt.flags[mujoco.mjtVisFlag.mjVIS_RANGEFINDER] = 0
        self._flags0 = self._scene.flags.copy()
        self._flags0[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._flags0[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._flags0[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
        self._flags0[mujoco.mjtRndFlag.mjRND_SEGMENT] = 0
        self._flags0[mujoco.mjtRndFlag.mjRND_IDCOLOR] = 0

    def close(self) -> None:
        """Free the MuJoCo render context and the GL context (idempotent)."""
        try:
            if self._gl is not None:
                self._gl.make_current()
            if self._ctx is not None:
                self._ctx.free()
            if self._gl is not None:
                self._gl.free()
        except Exception:  # noqa: BLE001 - freeing at interpreter exit may fail harmlessly
            pass
        self._gl = None
        self._ctx = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def render(self, data, groups: tuple[int, ...], *, rgb: bool = True, depth: bool = True,
               segmentation: bool = True) -> Frame:
        """Render the geom ``groups`` of ``data`` (kinematics must be up to date: mj_forward)."""
        mj = self._mj
        if self._ctx is None:
            raise RuntimeError("render: the renderer was closed")
        if self._gl is not None:
            self._gl.make_current()
        self._opt.geomgroup[:] = 0
        self._opt.flexgroup[:] = 0
        for g in groups:
            self._opt.geomgroup[g] = 1
            self._opt.flexgroup[g] = 1
        mj.mjv_updateScene(self.model, data, self._opt, None, self._cam, mj.mjtCatBit.mjCAT_ALL.value,
                           self._scene)
        H, W = self.height, self.width
        out_rgb = out_depth = out_geom = None
        if rgb:
            np.copyto(self._scene.flags, self._flags0)
            mj.mjr_render(self._rect, self._scene, self._ctx)
            buf = np.empty((H, W, 3), np.uint8)
            mj.mjr_readPixels(buf, None, self._rect, self._ctx)
            out_rgb = np.ascontiguousarray(buf[::-1])
        if depth or segmentation:
            flags = self._flags0.copy()
            flags[mj.mjtRndFlag.mjRND_SEGMENT] = 1
            flags[mj.mjtRndFlag.mjRND_IDCOLOR] = 1
            np.copyto(self._scene.flags, flags)
            mj.mjr_render(self._rect, self._scene, self._ctx)
            seg = np.empty((H, W, 3), np.uint8)
            zbuf = np.empty((H, W), np.float32)
            mj.mjr_readPixels(seg, zbuf, self._rect, self._ctx)
            np.copyto(self._scene.flags, self._flags0)
            seg, zbuf = seg[::-1], zbuf[::-1]
            ids = seg[..., 0].astype(np.int64) + (seg[..., 1].astype(np.int64) << 8) \
                + (seg[..., 2].astype(np.int64) << 16)  # 0 = background, else segid + 1
            n = self._scene.ngeom
            lut = np.full(n + 2, -1, np.int32)
            for i in range(n):
                g = self._scene.geoms[i]
                if g.segid >= 0 and g.objtype == mj.mjtObj.mjOBJ_GEOM:
                    lut[g.segid + 1] = g.objid
                elif g.segid >= 0 and g.objtype == mj.mjtObj.mjOBJ_FLEX:
                    lut[g.segid + 1] = self.model.ngeom + g.objid
            geom = lut[np.clip(ids, 0, n + 1)]
            if segmentation:
                out_geom = np.ascontiguousarray(geom)
            if depth:
                out_depth = np.ascontiguousarray(self._metric_depth(zbuf, geom >= 0))
        return Frame(out_rgb, out_depth, out_geom)

    def _metric_depth(self, zbuf: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        """Reversed-Z window depth (mjDEPTH_ZEROFAR) -> metres along the camera axis; 0 where nothing."""
        extent = float(self.model.stat.extent)
        near = np.float32(self.model.vis.map.znear * extent)
        far = np.float32(self.model.vis.map.zfar * extent)
        c = -(far + near) / (far - near)
        d = -(np.float32(2) * far * near) / (far - near)
        c = np.float32(-0.5) * c - np.float32(0.5)
        d = np.float32(-0.5) * d
        z = d / (zbuf.astype(np.float64) + c)
        return np.where(drawn, z, 0.0).astype(np.float32)
