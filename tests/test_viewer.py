"""`d2f view`: the scene construction against ground truth, the viser server without a browser, the static
export, and once in headless Chromium (skipped without it)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from d2f_core import ObjectFlow
from d2f_core.types import RGBD, Camera, Grasp, Observation
from d2f_core.viewer import (OCCLUDED_COLOR, VISIBLE_COLOR, ViewerInputs, build_scene, free_port, load_inputs,
                             occluded_positions)
from d2f_core.geometry import matrix_from_quat as wxyz_to_rotation, quat_from_matrix as rotation_to_wxyz

T, N = 6, 8


def _flow() -> ObjectFlow:
    """Known particles: point i at step t is at (0.02 i, 0.01 t, 0.0) + offset; a visibility pattern with a
    point occluded in the middle, one that appears late, one never visible, one lost at the end."""
    t, i = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    pts = np.stack([0.02 * i, 0.01 * t, np.zeros_like(t, dtype=float)], -1).astype(np.float32)
    pts += np.array([-0.07, -0.02, 0.0], dtype=np.float32)
    vis = np.ones((T, N), bool)
    vis[2:4, 1] = False     # occluded in the middle
    vis[:3, 2] = False      # appears at step 3
    vis[:, 3] = False       # never visible
    vis[4:, 4] = False      # lost for good
    pts[~vis] = 0.0         # a flow file carries no information there (zeros, as the pipeline writes)
    return ObjectFlow(points=pts, visible=vis, fps=5.0)


def _camera() -> Camera:
    """Looking straight down (world z up) from 0.5 m above the origin."""
    T_wc = np.eye(4)
    T_wc[:3, :3] = np.diag([1.0, -1.0, -1.0])
    T_wc[:3, 3] = [0.0, 0.0, 0.5]
    return Camera(K=np.array([[80.0, 0, 39.5], [0, 80.0, 29.5], [0, 0, 1]]), T_world_cam=T_wc, width=80, height=60)


def _run_folder(tmp_path: Path) -> Path:
    """A run folder written by the pipeline's own writers (observation, grasps) and ObjectFlow.save."""
    from d2f_core import pipeline

    run = tmp_path / "run"
    run.mkdir()
    cam = _camera()
    depth = np.full((60, 80), 0.5, np.float32)
    depth[:5] = 0.0  # invalid rows
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 1] = 180
    fake = SimpleNamespace(out_dir=run)
    pipeline._save_observe(fake, Observation(rgbd=RGBD(rgb=rgb, depth=depth, camera=cam), joints=np.zeros(7)))
    _flow().save(run / "flow.npz")
    g = [Grasp(T_world_grasp=np.eye(4), width=0.04, score=1.0), Grasp(T_world_grasp=_T([0.05, 0, 0.02]),
                                                                      width=0.05, score=0.5)]
    pipeline._save_grasp(fake, {"chosen": 1, "reason": "test", "candidates": g})
    plan = {"solver": "trajopt", "path": {
        "ee_phases": [{"phase": "approach", "gripper": 0.0, "T_world_ee": [_T([0, 0, 0.2]).tolist(),
                                                                          _T([0, 0, 0.1]).tolist()]},
                      {"phase": "follow", "gripper": 1.0, "T_world_ee": [_T([0, 0.01 * k, 0.1]).tolist()
                                                                         for k in range(3)]}],
        "ee_at_flow_frames": {"frames": [0, 2, 5], "T_world_ee": [_T([0, 0.0, 0.1]).tolist(),
                                                                  _T([0, 0.02, 0.1]).tolist(),
                                                                  _T([0, 0.05, 0.1]).tolist()]}}}
    (run / "plan.json").write_text(json.dumps(plan))
    return run


def _T(p) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = p
    return T


# ---------------------------------------------------------------- pure scene construction


def test_particles_at_each_step_are_the_flow_points_coloured_by_visibility():
    flow = _flow()
    scene = build_scene(ViewerInputs(flow=flow))
    assert scene.num_steps == T and scene.fps == 5.0
    for t in range(T):
        pts, cols = scene.frame(t)
        drawn = scene.drawn[t]
        vis = flow.visible[t]
        # visible particles are drawn exactly at flow.points[t]
        assert np.array_equal(scene.particles[t][vis], flow.points[t][vis])
        assert np.all(drawn[vis])
        # colours follow visibility
        assert np.all(scene.particle_colors[t][vis] == VISIBLE_COLOR)
        assert np.all(scene.particle_colors[t][~vis] == OCCLUDED_COLOR)
        assert len(pts) == drawn.sum() and np.array_equal(cols, scene.particle_colors[t][drawn])
        # the never-visible point is never drawn, every other one is
        assert not drawn[3] and drawn[[0, 1, 2, 4, 5, 6, 7]].all()
    # occluded particles are held at their last visible position (before the first one: at the first)
    assert np.array_equal(scene.particles[2, 1], flow.points[1, 1]) and np.array_equal(scene.particles[3, 1],
                                                                                          flow.points[1, 1])
    assert np.array_equal(scene.particles[0, 2], flow.points[3, 2])
    assert np.array_equal(scene.particles[5, 4], flow.points[3, 4])
    # no occluded particle is drawn at the zeros the file holds
    assert not np.any(np.all(scene.particles[scene.drawn] == 0.0, axis=-1))


def test_occluded_modes():
    flow = _flow()
    raw = occluded_positions(flow.points, flow.visible, "raw")
    assert np.array_equal(raw, flow.points)
    hide = occluded_positions(flow.points, flow.visible, "hide")
    assert np.all(np.isnan(hide[~flow.visible])) and np.array_equal(hide[flow.visible], flow.points[flow.visible])
    scene = build_scene(ViewerInputs(flow=flow), occluded="hide")
    for t in range(T):
        assert len(scene.frame(t)[0]) == flow.visible[t].sum()
        assert np.all(scene.frame(t)[1] == VISIBLE_COLOR)


def test_run_folder_scene_against_ground_truth(tmp_path):
    run = _run_folder(tmp_path)
    scene = build_scene(load_inputs(run), max_cloud_points=10_000)
    cam = _camera()
    # the cloud: every valid pixel lifted with K and T_world_cam -> the table plane z = 0 under the camera
    assert scene.cloud_points is not None and len(scene.cloud_points) == 55 * 80
    assert np.allclose(scene.cloud_points[:, 2], 0.0, atol=1e-6)
    uv, z = cam.project(scene.cloud_points)
    assert np.allclose(z, 0.5, atol=1e-6)
    assert np.allclose(uv, np.round(uv), atol=1e-4) and uv[:, 1].min() >= 5 - 1e-4  # pixel centres, valid rows
    assert np.all(scene.cloud_colors == [0, 180, 0])
    # a stride keeps the count under the cap
    small = build_scene(load_inputs(run), max_cloud_points=1000)
    assert 0 < len(small.cloud_points) <= 1000
    # the frustum: camera pose, vertical fov, aspect
    f = scene.frustum
    assert np.allclose(f["position"], [0, 0, 0.5])
    assert np.allclose(wxyz_to_rotation(f["wxyz"]), cam.T_world_cam[:3, :3], atol=1e-9)
    assert math.isclose(f["fov"], 2 * math.atan(30 / 80.0)) and math.isclose(f["aspect"], 80 / 60)
    # grasps: both candidates, the chosen one flagged
    assert [g["chosen"] for g in scene.grasps] == [False, True]
    assert np.allclose(scene.grasps[1]["position"], [0.05, 0, 0.02]) and scene.grasps[1]["width"] == 0.05
    # plan: the end-effector path over every phase, and the pose held from the last tracked frame
    assert scene.ee_path.shape == (5, 3) and scene.ee_phases == ["approach"] * 2 + ["follow"] * 3
    assert np.allclose(scene.ee_path[0], [0, 0, 0.2]) and np.allclose(scene.ee_path[-1], [0, 0.02, 0.1])
    ys = scene.ee_at_step[:, 1, 3]
    assert np.allclose(ys, [0.0, 0.0, 0.02, 0.02, 0.02, 0.05])


def test_flow_file_alone_and_bad_paths(tmp_path):
    from d2f_core.types import DataError

    _flow().save(tmp_path / "f.npz")
    scene = build_scene(load_inputs(tmp_path / "f.npz"))
    assert scene.cloud_points is None and scene.frustum is None and not scene.grasps and scene.ee_path is None
    with pytest.raises(DataError, match="no such run folder"):
        load_inputs(tmp_path / "missing")
    with pytest.raises(DataError, match="no flow.npz"):
        load_inputs(tmp_path)


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        R = wxyz_to_rotation(q)
        assert np.allclose(wxyz_to_rotation(rotation_to_wxyz(R)), R, atol=1e-9)
    for R in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])):  # 180 deg turns
        assert np.allclose(wxyz_to_rotation(rotation_to_wxyz(R)), R, atol=1e-9)


# ---------------------------------------------------------------- the viser server, no browser


def _decode_recording(data: bytes) -> dict:
    import msgspec
    import zstandard

    inner = zstandard.ZstdDecompressor().decompress(data[8:], max_output_size=int.from_bytes(data[:8], "little"))
    n = int.from_bytes(inner[:8], "little")
    return msgspec.msgpack.decode(inner[8:8 + n])


def test_server_holds_the_scene_nodes(tmp_path):
    pytest.importorskip("viser")
    from d2f_core.viewer import ViewerServer

    scene = build_scene(load_inputs(_run_folder(tmp_path)), max_cloud_points=2000)
    v = ViewerServer(scene, port=free_port())
    try:
        assert {"/scene/cloud", "/camera/frustum", "/flow/particles", "/grasps/chosen", "/grasps/candidates/0",
                "/plan/ee_path", "/robot/ee"} <= set(v.nodes)
        h = v.nodes["/flow/particles"]
        for t in (0, 3, T - 1):
            v.set_step(t)
            pts, cols = scene.frame(t)
            assert np.allclose(h.points, pts) and np.array_equal(h.colors, cols)
            assert np.allclose(v.nodes["/robot/ee"].position, scene.ee_at_step[t][:3, 3])
        assert v._gui["step"].value == T - 1
        # what the server would send a browser that connects now (its scene state, serialised)
        rec = _decode_recording(v.server.get_scene_serializer().serialize())
        names = {m[1].get("name") for m in rec["messages"] if isinstance(m[1], dict)}
        assert {"/scene/cloud", "/flow/particles", "/camera/frustum", "/grasps/chosen", "/plan/ee_path",
                "/robot/ee"} <= names
    finally:
        v.stop()


def test_export_html_and_viser_recording(tmp_path):
    pytest.importorskip("viser")
    from d2f_core.viewer import export

    scene = build_scene(load_inputs(_run_folder(tmp_path)), max_cloud_points=2000)
    rec = export(scene, tmp_path / "rec.viser")
    data = _decode_recording(rec.read_bytes())
    assert math.isclose(data["durationSeconds"], T / 5.0, rel_tol=1e-6)
    times = {round(m[0], 6) for m in data["messages"]}
    assert len(times) >= T  # one update per flow step
    page = export(scene, tmp_path / "rec.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and len(page) > 100_000
    from d2f_core.types import DataError
    with pytest.raises(DataError, match=r"\.html"):
        export(scene, tmp_path / "rec.png")


def test_cli_view_export_and_missing_path(tmp_path):
    pytest.importorskip("viser")
    from typer.testing import CliRunner

    from d2f_core.cli import app

    run = _run_folder(tmp_path)
    res = CliRunner().invoke(app, ["view", str(run), "--export", str(tmp_path / "v.html")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "v.html").is_file() and "self-contained" in res.output
    res = CliRunner().invoke(app, ["view", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no such run folder" in res.output
    res = CliRunner().invoke(app, ["view", str(run / "flow.npz"), "--port", str(free_port()), "--seconds", "0.5"])
    assert res.exit_code == 0, res.output
    assert "d2f view: http://localhost:" in res.output


# ---------------------------------------------------------------- once in a real browser


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(url: str, out: Path, size: tuple[int, int] = (1280, 800), budget_ms: int = 15000) -> Path:
    """Headless Chromium (software WebGL) screenshot of ``url``."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--hide-scrollbars", f"--virtual-time-budget={budget_ms}", f"--window-size={size[0]},{size[1]}",
           f"--screenshot={out}", url]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    return out


@pytest.mark.skipif(_chromium() is None, reason="no chromium (apt-get install chromium)")
def test_headless_chromium_shows_the_particles(tmp_path):
    pytest.importorskip("viser")
    Image = pytest.importorskip("PIL.Image")
    from d2f_core.viewer import serve

    # big particles under the camera; one screenshot with them, one with the particle node hidden: the
    # pixels that turn orange between the two are the particles (the page has orange elsewhere, e.g. a toast)
    def orange(path: Path) -> np.ndarray:
        img = np.asarray(Image.open(path).convert("RGB")).astype(int)
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        return (r > 190) & (g > 40) & (g < 170) & (b < 110)

    scene = build_scene(load_inputs(_run_folder(tmp_path)), max_cloud_points=2000)
    v = serve(scene, port=free_port(), point_size=0.02)
    try:
        v.set_step(1)
        for name, node in v.nodes.items():  # only the particles: the frustum's image can cover them
            if name != "/flow/particles":
                node.visible = False
        # the scene arrives over a websocket in real time (not Chromium's virtual time): on a loaded
        # machine a page can be captured before the scene (or the hidden state) reaches it, so the pair of
        # screenshots is taken again, with a longer budget, until they differ (at most 3 times)
        url = f"http://127.0.0.1:{v.port}"
        for attempt in range(3):
            v.nodes["/flow/particles"].visible = True
            with_particles = screenshot(url, tmp_path / f"shot{attempt}.png", budget_ms=15000 * (attempt + 1))
            v.nodes["/flow/particles"].visible = False
            without = screenshot(url, tmp_path / f"shot_hidden{attempt}.png", budget_ms=15000 * (attempt + 1))
            if with_particles.is_file() and without.is_file() and \
                    (orange(with_particles) & ~orange(without)).sum() > 100:
                break
    finally:
        v.stop()
    assert with_particles.is_file() and without.is_file(), "chromium wrote no screenshot"

    a, b = orange(with_particles), orange(without)
    assert a.shape == b.shape
    new_orange = a & ~b
    assert new_orange.sum() > 100, f"no orange particles in the screenshot ({new_orange.sum()} px)"
    assert (b & ~a).sum() < 0.2 * new_orange.sum()  # hiding them did not add orange elsewhere
