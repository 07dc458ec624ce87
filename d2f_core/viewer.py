"""``d2f view``: a web viewer (viser) for a run folder or a flow file.

Two halves:

* :func:`load_inputs` + :func:`build_scene` are pure (numpy only): they turn a run folder (or a
  ``flow.npz``) into a :class:`ViewerScene` of plain arrays -- the scene point cloud lifted from the
  observation's RGB-D with the camera intrinsics/extrinsics, the camera frustum, the flow particles
  per timestep with their visibility colours, the grasp candidates and the chosen grasp, the planned
  end-effector path and the end-effector pose at each flow step. Tests check these against ground
  truth without a browser.
* :func:`serve` / :func:`export` put a :class:`ViewerScene` into a ``viser.ViserServer`` (imported
  lazily: extra ``viewer``). ``export`` writes a static recording: ``.html`` is one self-contained
  page (viser's client with the recording embedded, playing the flow steps in a loop), ``.viser`` is
  viser's binary recording format (played by viser's client with ``?playbackPath=``).

The core imports this module lazily: ``import d2f_core`` never loads viser.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import quat_from_matrix
from .types import RGBD, Camera, DataError, Grasp, ObjectFlow

VISIBLE_COLOR = (255, 96, 24)
"""RGB of a flow particle the tracker saw at that step (orange)."""
OCCLUDED_COLOR = (120, 120, 130)
"""RGB of a particle that is occluded / lost at that step (grey), drawn at its last visible position."""
CHOSEN_GRASP_COLOR = (40, 200, 60)
CANDIDATE_GRASP_COLOR = (90, 140, 255)
EE_PATH_COLOR = (230, 40, 200)

INSTALL_HINT = 'pip install "dream2flow[viewer]"  (or: pip install viser)'


# ====================================================================== inputs


@dataclass
class ViewerInputs:
    """What a run folder (or a flow file) holds for the viewer; absent parts are None / empty."""

    flow: ObjectFlow
    rgbd: RGBD | None = None
    grasps: list[Grasp] = field(default_factory=list)
    chosen: int | None = None
    plan: dict[str, Any] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)


def load_observation(run_dir: str | Path) -> RGBD | None:
    """The run's initial RGB-D with its camera (``observation.npz`` written by the observe stage)."""
    path = Path(run_dir) / "observation.npz"
    if not path.is_file():
        return None
    from .safeload import check_array_file

    check_array_file(path, 1 << 30)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - corrupt zip, pickled arrays
        raise DataError(f"{path}: not a readable observation file ({e})") from None
    missing = [k for k in ("rgb", "depth", "camera") if k not in data]
    if missing:
        raise DataError(f"{path}: missing {missing}; re-run the observe stage (d2f run ... --out {run_dir})")
    try:
        cam = Camera.from_json(json.loads(str(data["camera"])))
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"{path}: camera is not readable ({type(e).__name__}: {str(e)[:100]})") from None
    return RGBD(rgb=data["rgb"], depth=data["depth"], camera=cam)


def load_grasps(run_dir: str | Path) -> tuple[list[Grasp], int | None]:
    """Grasp candidates and the chosen index from ``grasps.json`` (grasp stage), or ([], None)."""
    path = Path(run_dir) / "grasps.json"
    if not path.is_file():
        return [], None
    try:
        d = json.loads(path.read_text())
        cands = [Grasp(T_world_grasp=np.array(c["T_world_grasp"], dtype=np.float64), width=c["width"],
                       score=c.get("score", 0.0), source=c.get("source", "")) for c in d["candidates"]]
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"{path}: not a grasps file ({type(e).__name__}: {str(e)[:100]})") from None
    chosen = d.get("chosen")
    chosen = int(chosen) if isinstance(chosen, int) and 0 <= chosen < len(cands) else None
    return cands, chosen


def load_inputs(path: str | Path) -> ViewerInputs:
    """A run folder (``d2f run ... --out DIR``) or a flow file (``ObjectFlow.save``)."""
    p = Path(path)
    if p.is_file():
        return ViewerInputs(flow=ObjectFlow.load(p), source=str(p),
                            notes=["flow file only: no scene cloud, camera, grasps or plan"])
    if not p.is_dir():
        raise DataError(f"{p}: no such run folder or flow file; pass a folder written by `d2f run --out DIR` "
                        "or a flow.npz")
    if not (p / "flow.npz").is_file():
        raise DataError(f"{p}: no flow.npz in this folder; is it a run folder (d2f run ... --out {p})? "
                        "The flow stage writes flow.npz")
    notes: list[str] = []
    flow = ObjectFlow.load(p / "flow.npz")
    rgbd = load_observation(p)
    if rgbd is None:
        notes.append("no observation.npz: no scene cloud or camera")
    grasps, chosen = load_grasps(p)
    plan = None
    if (p / "plan.json").is_file():
        try:
            plan = json.loads((p / "plan.json").read_text())
        except ValueError as e:
            notes.append(f"plan.json not readable ({str(e)[:80]})")
    return ViewerInputs(flow=flow, rgbd=rgbd, grasps=grasps, chosen=chosen, plan=plan, source=str(p),
                        notes=notes)


# ====================================================================== the scene as plain data


@dataclass
class ViewerScene:
    """Everything the viewer draws, as plain arrays (world frame, metres).

    Fields:
        particles: float32 T x N x 3, where each particle is drawn: ``flow.points[t]`` where visible;
            occluded ones at their last visible position by default (:func:`occluded_positions`).
        visible: bool T x N, the flow's visibility.
        drawn: bool T x N, particles drawn at each step (finite positions).
        particle_colors: uint8 T x N x 3: :data:`VISIBLE_COLOR` where visible, :data:`OCCLUDED_COLOR`
            where not.
        fps: the flow's frame rate (the playback speed).
        cloud_points, cloud_colors: the scene cloud (M x 3 float32, M x 3 uint8) lifted from the
            observation's RGB-D, or None.
        frustum: camera frustum: ``T_world_cam``, ``position``, ``wxyz`` (camera-to-world rotation,
            OpenCV axes), ``fov`` (vertical, rad), ``aspect`` (width / height), ``image`` (small RGB).
        grasps: one dict per candidate: ``T_world_grasp``, ``position``, ``wxyz``, ``width``, ``score``,
            ``chosen``.
        ee_path: planned end-effector positions K x 3 over every phase (plan.json), or None.
        ee_phases: phase name per row of ``ee_path``.
        ee_at_step: float64 T x 4 x 4, the planned end-effector pose at each flow step (the optimised
            pose of the nearest tracked frame at or before it), or None.
    """

    particles: np.ndarray
    visible: np.ndarray
    drawn: np.ndarray
    particle_colors: np.ndarray
    fps: float = 8.0
    cloud_points: np.ndarray | None = None
    cloud_colors: np.ndarray | None = None
    frustum: dict[str, Any] | None = None
    grasps: list[dict[str, Any]] = field(default_factory=list)
    ee_path: np.ndarray | None = None
    ee_phases: list[str] = field(default_factory=list)
    ee_at_step: np.ndarray | None = None
    title: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_steps(self) -> int:
        return int(self.particles.shape[0])

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The particles drawn at step ``t`` and their colours (K x 3 float32, K x 3 uint8)."""
        t = int(np.clip(t, 0, self.num_steps - 1))
        keep = self.drawn[t]
        return self.particles[t][keep], self.particle_colors[t][keep]

    def center(self) -> np.ndarray:
        """A point to look at: the centroid of the flow over all steps."""
        p = self.particles[self.drawn]
        return p.mean(0).astype(np.float64) if len(p) else np.zeros(3)

    def view_position(self) -> np.ndarray:
        """Where the viewer's eye starts: the recording camera's side of the object, turned 35 deg about
        the world's z axis (so the frustum is in view), at 1.2 times the camera's distance (0.8 m without one)."""
        c = self.center()
        if self.frustum is None:
            return c + np.array([0.5, -0.5, 0.45])
        d = np.asarray(self.frustum["position"], dtype=np.float64) - c
        a = math.radians(35.0)
        rz = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
        return c + 1.2 * (rz @ d)


def scene_cloud(rgbd: RGBD, max_points: int = 150_000) -> tuple[np.ndarray, np.ndarray]:
    """The observation lifted to world points: every ``s``-th pixel in x and y with valid depth
    (``s`` the smallest stride keeping at most ``max_points`` pixels), via ``Camera.backproject``."""
    h, w = rgbd.depth.shape
    s = max(1, int(math.ceil(math.sqrt(h * w / max(1, max_points)))))
    ys, xs = np.mgrid[0:h:s, 0:w:s]
    ys, xs = ys.ravel(), xs.ravel()
    d = rgbd.depth[ys, xs]
    ok = np.isfinite(d) & (d > 0)
    ys, xs, d = ys[ok], xs[ok], d[ok]
    pts = rgbd.camera.backproject(np.stack([xs, ys], -1).astype(np.float64), d)
    return pts.astype(np.float32), rgbd.rgb[ys, xs].astype(np.uint8)


def camera_frustum(camera: Camera, rgb: np.ndarray | None = None, image_width: int = 160) -> dict[str, Any]:
    """Frustum of a pinhole camera: pose (OpenCV axes, as viser's frustums are), vertical fov, aspect."""
    fov = 2.0 * math.atan2(camera.height / 2.0, float(camera.K[1, 1]))
    image = None
    if rgb is not None:
        step = max(1, int(round(rgb.shape[1] / image_width)))
        image = np.ascontiguousarray(rgb[::step, ::step])
    T = np.asarray(camera.T_world_cam, dtype=np.float64)
    return {"T_world_cam": T, "position": T[:3, 3].copy(), "wxyz": quat_from_matrix(T[:3, :3]), "fov": fov,
            "aspect": camera.width / camera.height, "image": image, "name": camera.name}


def _plan_path(plan: dict[str, Any] | None, T: int) -> tuple[np.ndarray | None, list[str], np.ndarray | None]:
    """(ee positions over every phase, their phase names, ee pose per flow step) from plan.json."""
    path = (plan or {}).get("path") or {}
    ee_path, phases, per_step = None, [], None
    rows = []
    for ph in path.get("ee_phases") or []:
        Ts = np.asarray(ph.get("T_world_ee", []), dtype=np.float64).reshape(-1, 4, 4)
        rows.append(Ts[:, :3, 3])
        phases += [str(ph.get("phase", "?"))] * len(Ts)
    if rows:
        ee_path = np.concatenate(rows, 0)
    at = path.get("ee_at_flow_frames") or {}
    frames = np.asarray(at.get("frames", []), dtype=int)
    poses = np.asarray(at.get("T_world_ee", []), dtype=np.float64).reshape(-1, 4, 4)
    if len(frames) and len(frames) == len(poses):
        order = np.argsort(frames)
        frames, poses = frames[order], poses[order]
        k = np.clip(np.searchsorted(frames, np.arange(T), side="right") - 1, 0, len(frames) - 1)
        per_step = poses[k]
    return ee_path, phases, per_step


def occluded_positions(points: np.ndarray, visible: np.ndarray, mode: str = "hold") -> np.ndarray:
    """Where to draw each particle (T x N x 3 float32, NaN = not drawn).

    Visible particles are drawn at ``points[t]``. A flow carries no information for an occluded one
    (``ObjectFlow``: only visible points count; files hold zeros or NaN there), so by ``mode``:
    ``"hold"`` draws it at its last visible position (before its first visible step: at that one;
    never visible: not drawn), ``"hide"`` does not draw it, ``"raw"`` draws ``points[t]`` as stored.
    """
    pts = np.asarray(points, dtype=np.float32)
    vis = np.asarray(visible, dtype=bool)
    if mode == "raw":
        return pts.copy()
    if mode not in ("hold", "hide"):
        raise DataError(f"occluded particles: mode {mode!r}; use hold, hide or raw")
    out = np.full(pts.shape, np.nan, dtype=np.float32)
    out[vis] = pts[vis]
    if mode == "hide":
        return out
    T = pts.shape[0]
    steps = np.arange(T)[:, None]
    last = np.maximum.accumulate(np.where(vis, steps, -1), axis=0)             # last visible step <= t
    nxt = np.minimum.accumulate(np.where(vis, steps, T)[::-1], axis=0)[::-1]   # first visible step >= t
    src = np.where(last >= 0, last, nxt)
    ok = src < T
    cols = np.broadcast_to(np.arange(pts.shape[1])[None], src.shape)
    out[ok] = pts[src[ok], cols[ok]]
    return out


def build_scene(inputs: ViewerInputs, *, max_cloud_points: int = 150_000, occluded: str = "hold") -> ViewerScene:
    """The pure scene construction: :class:`ViewerInputs` -> :class:`ViewerScene` (no viser).
    ``occluded``: where occluded particles are drawn (:func:`occluded_positions`)."""
    flow = inputs.flow
    vis = np.asarray(flow.visible, dtype=bool)
    pts = occluded_positions(flow.points, vis, occluded)
    drawn = np.all(np.isfinite(pts), axis=-1)
    colors = np.empty(pts.shape, dtype=np.uint8)
    colors[:] = np.asarray(OCCLUDED_COLOR, dtype=np.uint8)
    colors[vis] = np.asarray(VISIBLE_COLOR, dtype=np.uint8)
    scene = ViewerScene(particles=pts, visible=vis, drawn=drawn, particle_colors=colors, fps=float(flow.fps),
                        notes=list(inputs.notes), title=Path(inputs.source).name if inputs.source else "")
    if inputs.rgbd is not None:
        scene.cloud_points, scene.cloud_colors = scene_cloud(inputs.rgbd, max_cloud_points)
        scene.frustum = camera_frustum(inputs.rgbd.camera, inputs.rgbd.rgb)
    for i, g in enumerate(inputs.grasps):
        T = np.asarray(g.T_world_grasp, dtype=np.float64)
        scene.grasps.append({"T_world_grasp": T, "position": T[:3, 3].copy(), "wxyz": quat_from_matrix(T[:3, :3]),
                             "width": float(g.width), "score": float(g.score), "source": g.source,
                             "chosen": i == inputs.chosen})
    scene.ee_path, scene.ee_phases, scene.ee_at_step = _plan_path(inputs.plan, scene.num_steps)
    if inputs.plan is not None and scene.ee_path is None:
        scene.notes.append("plan.json has no end-effector path (written by the trajopt/avdc/rigvid solvers)")
    return scene


def gripper_segments(T_world_grasp: np.ndarray, width: float, depth: float = 0.05) -> np.ndarray:
    """A parallel-jaw gripper as 4 line segments (4 x 2 x 3), world frame: jaws along the grasp's x,
    approach along +z ending at the grasp origin (between the fingertips)."""
    T = np.asarray(T_world_grasp, dtype=np.float64)
    h = 0.5 * max(float(width), 0.01)
    local = np.array([[[-h, 0, -depth], [h, 0, -depth]],          # palm
                      [[-h, 0, -depth], [-h, 0, 0]],              # left finger
                      [[h, 0, -depth], [h, 0, 0]],                # right finger
                      [[0, 0, -depth], [0, 0, -2 * depth]]])      # wrist
    return (local @ T[:3, :3].T + T[:3, 3]).astype(np.float32)


# ====================================================================== viser


def _viser():
    try:
        import viser
    except ImportError:
        raise DataError(f"d2f view needs viser: {INSTALL_HINT}") from None
    return viser


class ViewerServer:
    """A running viser server showing a :class:`ViewerScene`; ``set_step(t)`` moves the particles and
    the end-effector; ``nodes`` maps scene-node names to viser handles; ``stop()`` ends it."""

    def __init__(self, scene: ViewerScene, *, host: str = "127.0.0.1", port: int = 8080, gui: bool = True,
                 point_size: float = 0.006, verbose: bool = False) -> None:
        viser = _viser()
        self.scene = scene
        self.server = viser.ViserServer(host=host, port=port, verbose=verbose)
        self.nodes: dict[str, Any] = {}
        self.step = 0
        self._point_size = point_size
        self._build()
        self._gui: dict[str, Any] = {}
        if gui:
            self._add_gui()

    @property
    def port(self) -> int:
        return int(self.server.get_port())

    def _build(self) -> None:
        s, sc = self.scene, self.server.scene
        sc.set_up_direction("+z")
        n = self.nodes
        if s.cloud_points is not None and len(s.cloud_points):
            n["/scene/cloud"] = sc.add_point_cloud("/scene/cloud", s.cloud_points, s.cloud_colors,
                                                   point_size=0.5 * self._point_size, point_shape="square",
                                                   point_shading="flat")
        if s.frustum is not None:
            f = s.frustum
            n["/camera/frustum"] = sc.add_camera_frustum(
                "/camera/frustum", fov=f["fov"], aspect=f["aspect"], scale=0.08, thickness=0.003,
                image=f["image"], wxyz=f["wxyz"], position=f["position"], color=(30, 30, 30))
        pts, cols = s.frame(0)
        n["/flow/particles"] = sc.add_point_cloud("/flow/particles", pts, cols, point_size=self._point_size,
                                                  point_shape="circle", precision="float32")
        for i, g in enumerate(s.grasps):
            name = "/grasps/chosen" if g["chosen"] else f"/grasps/candidates/{i}"
            color = CHOSEN_GRASP_COLOR if g["chosen"] else CANDIDATE_GRASP_COLOR
            n[name] = sc.add_line_segments(name, gripper_segments(g["T_world_grasp"], g["width"]), color,
                                           thickness=0.004 if g["chosen"] else 0.0015)
        if s.ee_path is not None and len(s.ee_path) >= 2:
            seg = np.stack([s.ee_path[:-1], s.ee_path[1:]], 1).astype(np.float32)
            n["/plan/ee_path"] = sc.add_line_segments("/plan/ee_path", seg, EE_PATH_COLOR, thickness=0.003)
        if s.ee_at_step is not None:
            T = s.ee_at_step[0]
            n["/robot/ee"] = sc.add_frame("/robot/ee", axes_length=0.06, axes_radius=0.004,
                                          wxyz=quat_from_matrix(T[:3, :3]), position=T[:3, 3])
        self.server.initial_camera.position = tuple(s.view_position())
        self.server.initial_camera.look_at = tuple(s.center())

    def set_step(self, t: int) -> None:
        s = self.scene
        self.step = int(np.clip(t, 0, s.num_steps - 1))
        pts, cols = s.frame(self.step)
        h = self.nodes["/flow/particles"]
        with self.server.atomic():
            h.points = pts
            h.colors = cols
            if s.ee_at_step is not None:
                T = s.ee_at_step[self.step]
                self.nodes["/robot/ee"].position = T[:3, 3]
                self.nodes["/robot/ee"].wxyz = quat_from_matrix(T[:3, :3])
        if "step" in self._gui and self._gui["step"].value != self.step:
            self._gui["step"].value = self.step

    def _add_gui(self) -> None:
        import threading
        import time

        s, gui = self.scene, self.server.gui
        gui.add_markdown(f"**dream2flow** `{s.title}`  \n{s.num_steps} steps x {s.particles.shape[1]} particles; "
                         "orange = visible, grey = occluded")
        step = gui.add_slider("step", min=0, max=max(0, s.num_steps - 1), step=1, initial_value=0)
        play = gui.add_checkbox("play", initial_value=False)
        self._gui.update(step=step, play=play)

        @step.on_update
        def _(_event: Any) -> None:
            if step.value != self.step:
                self.set_step(int(step.value))

        for name in ("/scene/cloud", "/camera/frustum", "/grasps", "/plan/ee_path", "/robot/ee"):
            handles = [h for k, h in self.nodes.items() if k.startswith(name)]
            if not handles:
                continue
            box = gui.add_checkbox(f"show {name.strip('/')}", initial_value=True)

            def toggle(_event: Any, hs=handles, b=box) -> None:
                for h in hs:
                    h.visible = b.value
            box.on_update(toggle)

        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.is_set():
                if play.value and s.num_steps > 1:
                    self.set_step((self.step + 1) % s.num_steps)
                time.sleep(1.0 / max(1.0, s.fps))
        threading.Thread(target=loop, daemon=True, name="d2f-view-play").start()

    def stop(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
        self.server.stop()


def serve(scene: ViewerScene, *, host: str = "127.0.0.1", port: int = 8080, **kw: Any) -> ViewerServer:
    """Start a viser server showing ``scene`` (returns at once; the server runs in its own thread)."""
    return ViewerServer(scene, host=host, port=port, **kw)


def export(scene: ViewerScene, path: str | Path, *, port: int = 0) -> Path:
    """Write a static recording of ``scene``: the full scene, then one update per flow step at the flow's
    fps (the player loops). ``.html``: one self-contained page (open it in a browser, no server);
    ``.viser``: viser's binary recording. No browser and no network are needed to write it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".html", ".viser"):
        raise DataError(f"{path}: --export writes .html (a self-contained page) or .viser (a viser recording)")
    if port == 0:
        port = free_port()
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # viser prints its URL banner; no one will connect
        v = ViewerServer(scene, port=port, gui=False)
    try:
        ser = v.server.get_scene_serializer()
        for t in range(1, scene.num_steps):
            ser.insert_sleep(1.0 / max(scene.fps, 1e-3))
            v.set_step(t)
        ser.insert_sleep(1.0 / max(scene.fps, 1e-3))
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".html":
            path.write_text(ser.as_html())
        else:
            path.write_bytes(ser.serialize())
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            v.stop()
    return path


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
