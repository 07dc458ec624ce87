"""The third-party example package examples/d2f-example-plugin, discovered like an install.

No pip install: each test writes a ``d2f_example_plugin-0.1.0.dist-info`` folder (METADATA and
the entry points copied from the package's own pyproject.toml) into tmp_path and puts tmp_path
and the package's ``src/`` on sys.path, which is exactly what ``importlib.metadata`` sees after
``pip install``. Then a fresh :class:`d2f_core.registry.Registry` must find it, build it from a
run config, and the tracker must follow known motion.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from d2f_conformance.scenes import standard_scene, texture
from d2f_core import Video
from d2f_core.config import load_config
from d2f_core.registry import OptionsError, PluginLoadError, Registry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "d2f-example-plugin"
SRC = EXAMPLE / "src"


# ----------------------------------------------------------------------------- helpers


def _entry_points_from_pyproject() -> dict[str, str]:
    """The package's ``[project.entry-points."dream2flow"]`` table, as pip would install it."""
    text = (EXAMPLE / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: read the one table by hand
        section = text.split('[project.entry-points."dream2flow"]', 1)[1].split("\n[", 1)[0]
        return dict(re.findall(r'^\s*([\w.-]+)\s*=\s*"([^"]+)"', section, flags=re.M))
    return tomllib.loads(text)["project"]["entry-points"]["dream2flow"]


def _write_dist(root: Path, name: str, version: str, entry_points: dict[str, str]) -> Path:
    """A minimal installed-distribution record, as pip writes it into site-packages."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[dream2flow]\n{lines}")
    return info


def _really_installed() -> bool:
    """True when someone pip-installed the example into this environment (CI may)."""
    try:
        metadata.distribution("d2f-example-plugin")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture
def installed(tmp_path, monkeypatch) -> str:
    """The example package 'installed' into tmp_path (unless it really is installed)."""
    if not _really_installed():
        _write_dist(tmp_path, "d2f-example-plugin", "0.1.0", _entry_points_from_pyproject())
        monkeypatch.syspath_prepend(str(SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "d2f-example-plugin"


@pytest.fixture
def broken(installed, tmp_path) -> str:
    """A second third-party package whose plugin module raises on import."""
    (tmp_path / "d2f_broken_plugin_mod.py").write_text(
        'raise RuntimeError("this plugin is broken on purpose")\n')
    _write_dist(tmp_path, "d2f-broken-plugin", "0.2.0", {"broken-tracker": "d2f_broken_plugin_mod"})
    return "d2f-broken-plugin"


def _row(registry: Registry, name: str) -> dict:
    rows = [r for r in registry.rows() if r["name"] == name]
    assert len(rows) == 1, f"expected one row for {name!r}, got {rows}"
    return rows[0]


def _box_queries_and_truth(scene):
    """Queries (t=0, x, y) on every box pixel of frame 0 and their true pixels T x N x 2."""
    ys, xs = np.nonzero(scene.masks[0])
    queries = np.stack([np.zeros_like(xs), xs, ys], axis=1).astype(np.float32)
    truth, _ = scene.camera.project(scene.flow.points)       # same pixel order as the mask
    return queries, truth


def _translating_video(shift_xy, num_frames=6, scale=0.01, seed=5, width=64, height=48) -> Video:
    """A smooth texture translating by ``shift_xy`` pixels per frame, rendered exactly."""
    X, Y = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    frames = np.stack([texture((X - shift_xy[0] * t) * scale, (Y - shift_xy[1] * t) * scale, seed, 0.12)
                       for t in range(num_frames)])
    return Video(frames=frames, fps=8.0)


def _tracker(**options):
    from d2f_example_plugin.plugin import BlockMatchingOptions, build

    return build(BlockMatchingOptions(**options), None)


# ----------------------------------------------------------------------------- discovery


def test_discovered_through_its_entry_point_with_package_and_version(installed):
    registry = Registry()
    row = _row(registry, "block-matching")
    assert row["status"] == "ok", row["error"]
    assert row["error"] is None
    assert row["kind"] == "tracker"
    assert row["package"] == "d2f-example-plugin"
    assert row["version"] == "0.1.0"
    assert row["capabilities"] == ["deterministic"]
    assert row["entry_point"] == "block-matching = d2f_example_plugin.plugin"
    entry = registry.get("tracker", "block-matching")
    assert (entry.distribution, entry.version) == ("d2f-example-plugin", "0.1.0")


@pytest.mark.skipif(_really_installed(), reason="d2f-example-plugin is pip-installed here")
def test_not_discovered_without_the_dist_info(monkeypatch):
    """Control: the source on sys.path alone registers nothing (discovery is by entry point)."""
    monkeypatch.syspath_prepend(str(SRC))
    assert not [r for r in Registry().rows() if r["name"] == "block-matching"]


def test_options_model_documents_every_field():
    from d2f_example_plugin.plugin import BlockMatchingOptions

    for name, field in BlockMatchingOptions.model_fields.items():
        assert field.description, f"option {name} has no description"
    assert "pixels" in BlockMatchingOptions.model_fields["patch"].description
    assert "pixels" in BlockMatchingOptions.model_fields["search"].description


# ----------------------------------------------------------------------------- config -> tracker


def test_selected_by_config_and_follows_the_box(installed):
    registry = Registry()
    cfg = load_config(data={"task": {"instruction": "push the box to the right", "object": "box"},
                            "tracker": {"plugin": "block-matching",
                                        "options": {"patch": 9, "search": 4, "max_ssd_ratio": 0.5}}})
    tracker = registry.create("tracker", cfg.tracker.plugin, cfg.tracker.options, where="tracker")
    assert tracker.name == "block-matching"
    assert tracker.capabilities == frozenset({"deterministic"})

    scene = standard_scene()
    queries, truth = _box_queries_and_truth(scene)
    tracks = tracker.track(scene.video, queries)
    err = np.linalg.norm(tracks.xy - truth, axis=-1)            # T x N pixels
    moved = np.linalg.norm(truth[-1] - truth[0], axis=-1)
    assert moved.min() > 5.0                                     # the box really moves ~6 px
    assert err[-1].max() < 1.0, f"worst final error {err[-1].max():.2f} px"
    assert err.mean() < 0.3
    assert tracks.visible[-1].mean() > 0.95
    np.testing.assert_array_equal(tracks.xy[0], queries[:, 1:])  # exact at the query frame


def test_selected_with_a_set_override(installed):
    cfg = load_config(data={"tracker": {"plugin": "zero-motion"}},
                      overrides=["tracker.plugin=block-matching", "tracker.options.patch=7"])
    tracker = Registry().create("tracker", cfg.tracker.plugin, cfg.tracker.options)
    assert (tracker.name, tracker.patch) == ("block-matching", 7)


def test_options_typo_names_the_valid_keys(installed):
    registry = Registry()
    with pytest.raises(OptionsError) as e:
        registry.create("tracker", "block-matching", {"serach": 3}, where="tracker")
    msg = str(e.value)
    assert "tracker.options.serach" in msg and "did you mean 'search'" in msg
    assert "Valid keys: patch, search, max_ssd_ratio" in msg
    with pytest.raises(OptionsError, match="odd.*use 9"):
        registry.create("tracker", "block-matching", {"patch": 8})


# ----------------------------------------------------------------------------- clean process


def test_discovered_in_a_clean_process(installed, tmp_path):
    code = textwrap.dedent("""
        import json, sys
        import numpy as np
        from d2f_core.registry import Registry
        from d2f_conformance.scenes import standard_scene
        reg = Registry()
        row = [r for r in reg.rows() if r["name"] == "block-matching"][0]
        lazy = "d2f_example_plugin.block_matching" not in sys.modules
        tracker = reg.create("tracker", "block-matching", {"search": 3})
        scene = standard_scene()
        ys, xs = np.nonzero(scene.masks[0])
        q = np.stack([np.zeros_like(xs), xs, ys], 1).astype(np.float32)
        truth, _ = scene.camera.project(scene.flow.points)
        err = float(np.abs(tracker.track(scene.video, q).xy[-1] - truth[-1]).max())
        print(json.dumps({"row": row, "lazy": lazy, "err": err}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(tmp_path), capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["row"]["status"] == "ok"
    assert (result["row"]["package"], result["row"]["version"]) == ("d2f-example-plugin", "0.1.0")
    assert result["lazy"], "the tracker module was imported at discovery, not by the factory"
    assert result["err"] < 1.0


def _clean_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(SRC)]))
    env.pop("D2F_STRICT_PLUGINS", None)
    return env


def test_d2f_plugins_and_d2f_check_see_it(installed, tmp_path):
    """The CLI, in a clean process: `d2f plugins --json` lists it, `d2f check block-matching` passes."""
    cli = [sys.executable, "-m", "d2f_core.cli"]
    env = _clean_env(tmp_path)
    out = subprocess.run([*cli, "plugins", "--json"], env=env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [r for r in json.loads(out.stdout) if r["name"] == "block-matching"]
    assert [(r["status"], r["package"], r["version"]) for r in rows] == [("ok", "d2f-example-plugin", "0.1.0")]
    out = subprocess.run([*cli, "check", "block-matching", "--json"], env=env, capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads(out.stdout)
    assert {r["plugin"] for r in results} == {"block-matching"}
    assert not [r for r in results if r["status"] == "failed"], out.stdout
    assert {"tracker_known_motion", "tracker_query_position"} <= {
        r["check"] for r in results if r["status"] == "passed"}


def test_check_plugin_has_no_failures(installed):
    from d2f_conformance import all_passed, check_plugin, format_results

    results = check_plugin("block-matching", registry=Registry())
    assert all_passed(results), format_results(results)
    passed = {r.check for r in results if r.status == "passed"}
    assert {"tracker_known_motion", "tracker_query_position", "tracker_rejects_malformed_input",
            "tracker_determinism", "tracker_no_input_mutation"} <= passed


# ----------------------------------------------------------------------------- failures


def test_broken_third_party_plugin_is_reported_and_others_still_work(broken):
    registry = Registry()
    row = _row(registry, "broken-tracker")
    assert row["status"] == "failed"
    assert (row["package"], row["version"]) == ("d2f-broken-plugin", "0.2.0")
    assert "RuntimeError" in row["error"] and "broken on purpose" in row["error"]
    assert "d2f-broken-plugin" in row["error"]                   # says what to fix or uninstall
    assert _row(registry, "block-matching")["status"] == "ok"
    video = _translating_video((0.0, 0.0), num_frames=3)
    queries = np.array([[0, 20.0, 20.0], [2, 40.5, 30.25]], np.float32)
    tracks = registry.create("tracker", "block-matching").track(video, queries)
    np.testing.assert_allclose(tracks.xy, np.broadcast_to(queries[:, 1:], (3, 2, 2)), atol=1e-6)


def _entry_points_of(*packages: str):
    """The ``dream2flow`` entry points of the named distributions only."""
    return [ep for ep in metadata.entry_points(group="dream2flow")
            if ep.dist is not None and ep.dist.metadata["Name"] in packages]


def test_strict_mode_makes_a_load_failure_fatal(broken, installed, monkeypatch):
    monkeypatch.delenv("D2F_STRICT_PLUGINS", raising=False)
    # control: strict with only the good package loads fine
    Registry(entry_points=_entry_points_of(installed), strict=True).discover()
    eps = _entry_points_of(installed, broken)
    assert len(eps) == 2
    with pytest.raises(PluginLoadError, match=r"broken-tracker \(d2f-broken-plugin 0\.2\.0\).*broken on purpose"):
        Registry(entry_points=eps, strict=True).discover()
    Registry(entry_points=eps).discover()                        # not strict: recorded only
    monkeypatch.setenv("D2F_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="D2F_STRICT_PLUGINS"):
        Registry(entry_points=eps).discover()


# ----------------------------------------------------------------------------- the tracker itself


def test_static_video_keeps_every_point_exactly(installed):
    video = _translating_video((0.0, 0.0), num_frames=4)
    rng = np.random.default_rng(0)
    queries = np.stack([rng.integers(0, 4, 32), rng.uniform(5, 58, 32), rng.uniform(5, 42, 32)],
                       axis=1).astype(np.float32)
    tracks = _tracker().track(video, queries)
    np.testing.assert_allclose(tracks.xy, np.broadcast_to(queries[:, 1:], (4, 32, 2)), atol=1e-4)
    assert tracks.visible.all()
    np.testing.assert_array_equal(tracks.query_frame, queries[:, 0].astype(np.int64))


def test_subpixel_translation_forwards_and_backwards(installed):
    shift = np.array([0.37, -0.61])                              # pixels per frame
    video = _translating_video(shift)
    rng = np.random.default_rng(1)
    qt = rng.integers(0, video.num_frames, 64)                   # queries on every frame
    queries = np.stack([qt, rng.uniform(8, 55, 64), rng.uniform(8, 39, 64)], axis=1).astype(np.float32)
    tracks = _tracker().track(video, queries)
    steps = np.arange(video.num_frames)[:, None] - qt[None, :]
    truth = queries[None, :, 1:] + steps[..., None] * shift
    err = np.linalg.norm(tracks.xy - truth, axis=-1)
    far = np.abs(steps) >= 2
    assert np.median(err[far]) < 0.1 and np.percentile(err[far], 90) < 0.3 and err.max() < 1.0
    assert tracks.visible.all()


def test_backwards_from_the_last_frame_of_the_scene(installed):
    scene = standard_scene()
    _, truth = _box_queries_and_truth(scene)
    inner = np.nonzero(np.all(np.abs(truth[-1] - truth[-1].mean(0)) < [6, 3], axis=1))[0]
    queries = np.concatenate([np.full((inner.size, 1), 7.0), truth[-1, inner]], 1).astype(np.float32)
    tracks = _tracker().track(scene.video, queries)
    err = np.linalg.norm(tracks.xy - truth[:, inner], axis=-1)
    assert np.linalg.norm(truth[0, inner] - truth[-1, inner], axis=-1).min() > 5.0
    assert err[0].max() < 1.0 and tracks.visible.all()


def test_occlusion_hides_points_then_they_are_found_again(installed):
    scene = standard_scene()
    queries, truth = _box_queries_and_truth(scene)
    frames = np.array(scene.video.frames)
    X, Y = np.meshgrid(np.arange(64) * 0.01, np.arange(48) * 0.01)
    frames[4:6, 14:27, 20:34] = texture(X, Y, 7, 0.1)[14:27, 20:34]  # a textured occluder
    tracks = _tracker().track(Video(frames=frames), queries)
    x, y = queries[:, 1], queries[:, 2]
    under = (x >= 24) & (x <= 28) & (y >= 18) & (y <= 23)        # covered in frames 4 and 5
    assert under.sum() >= 10
    assert not tracks.visible[4:6, under].any()
    assert tracks.visible[[1, 2, 3, 6, 7]][:, under].all()
    assert np.linalg.norm(tracks.xy[-1, under] - truth[-1, under], axis=-1).max() < 1.0


def test_point_leaving_the_image_becomes_invisible(installed):
    video = _translating_video((3.0, 0.0), num_frames=8)
    queries = np.array([[0, 50.0, 24.0], [0, 20.0, 24.0]], np.float32)
    tracks = _tracker(patch=9, search=4).track(video, queries)
    # point 0 reaches x = 59 at frame 3 (patch edge at 63 = last column), beyond from frame 4
    assert tracks.visible[:4, 0].all() and not tracks.visible[4:, 0].any()
    assert tracks.visible[:, 1].all()
    np.testing.assert_allclose(tracks.xy[:, 1, 0], 20.0 + 3.0 * np.arange(8), atol=0.1)


def test_rejects_bad_inputs_with_the_argument_named(installed):
    tracker = _tracker()
    video = _translating_video((0.0, 0.0), num_frames=3)
    with pytest.raises(ValueError, match="queries"):
        tracker.track(video, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="queries.*frame index"):
        tracker.track(video, np.array([[3, 10.0, 10.0]], np.float32))
    with pytest.raises(ValueError, match="video"):
        tracker.track(np.asarray(video.frames), np.array([[0, 10.0, 10.0]], np.float32))


def test_inputs_untouched_and_deterministic(installed):
    scene = standard_scene()
    queries, _ = _box_queries_and_truth(scene)
    queries = queries.astype(np.float64)                          # any float dtype is accepted
    q_before, f_before = queries.copy(), np.array(scene.video.frames)
    a = _tracker().track(scene.video, queries)
    b = _tracker().track(scene.video, queries)
    np.testing.assert_array_equal(queries, q_before)
    np.testing.assert_array_equal(scene.video.frames, f_before)
    np.testing.assert_array_equal(a.xy, b.xy)
    np.testing.assert_array_equal(a.visible, b.visible)


def test_64_points_8_frames_well_under_a_second(installed):
    scene = standard_scene()
    rng = np.random.default_rng(2)
    queries = np.stack([rng.integers(0, 8, 64), rng.uniform(0, 63, 64), rng.uniform(0, 47, 64)],
                       axis=1).astype(np.float32)
    tracker = _tracker()
    tracker.track(scene.video, queries[:2])                        # warm up
    start = time.perf_counter()
    tracks = tracker.track(scene.video, queries)
    assert time.perf_counter() - start < 0.5
    assert tracks.xy.shape == (8, 64, 2)
