"""Conformance settings (d2f_conformance.settings): the options ``d2f check`` builds a plugin with
and the checks it skips, kept out of shipped plugin modules.

A third-party package is "installed" into tmp_path as pip would (a dist-info folder with its entry
points) with two modules: the plugin (group ``dream2flow``) and its conformance settings (group
``dream2flow.conformance``). The plugin module never imports the settings module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from d2f_conformance import all_passed, check_plugin, format_results
from d2f_conformance.builtin import BUILTIN
from d2f_conformance.settings import (ENTRY_POINT_GROUP, ConformanceSettings, SettingsTable, settings_for)
from d2f_core import Manifest
from d2f_core.registry import PluginLoadError, Registry, get_registry

PLUGIN = '''
"""A third-party tracker that needs a file: the query offset it reads (light, no test code)."""
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from d2f_core import Manifest, Tracks2D, hookimpl
from d2f_core.validate import check_queries, check_video


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="a .npy file holding 0.0")


class FileTracker:
    name = "{name}"
    kind = "tracker"
    capabilities = frozenset({{"zero_motion", "deterministic"}})
    Options = Options
    description = "stays put; needs a file"

    def __init__(self, options):
        self.offset = float(np.load(options.path))

    def track(self, video, queries):
        check_video(video, "video")
        q = check_queries(queries, video)
        T, n = video.num_frames, q.shape[0]
        xy = np.broadcast_to(q[None, :, 1:3] + self.offset, (T, n, 2)).astype(np.float32)
        return Tracks2D(xy=xy, visible=np.ones((T, n), bool), query_frame=q[:, 0].astype(np.int64))


@hookimpl
def d2f_register(register):
    register(Manifest.of(FileTracker))
'''

SETTINGS = '''
"""The package's conformance settings: imported by d2f check only."""
import numpy as np


def options(env):
    path = env.tmp_dir / "offset.npy"
    np.save(path, np.float64(0.0))
    return {{"path": str(path)}}


def d2f_conformance_settings(register):
    register("tracker", "{name}", options=options,
             skip={{"tracker_determinism": "documented skip for the test"}})
'''


def _write_dist(root: Path, dist: str, groups: dict[str, dict[str, str]]) -> None:
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    text = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for g, eps in groups.items())
    (info / "entry_points.txt").write_text(text)


@pytest.fixture
def third_party(tmp_path, monkeypatch, request):
    """An installed package 'acme-trackers': plugin module + conformance-settings module."""
    tag = request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[-40:]
    plugin_mod, settings_mod = f"acme_plugin_{tag}", f"acme_conformance_{tag}"
    name = "acme-file-tracker"
    (tmp_path / f"{plugin_mod}.py").write_text(PLUGIN.format(name=name))
    (tmp_path / f"{settings_mod}.py").write_text(SETTINGS.format(name=name))
    _write_dist(tmp_path, "acme-trackers", {"dream2flow": {name: plugin_mod},
                                            ENTRY_POINT_GROUP: {name: settings_mod}})
    monkeypatch.syspath_prepend(str(tmp_path))
    yield {"name": name, "plugin": plugin_mod, "settings": settings_mod, "root": tmp_path}
    for m in (plugin_mod, settings_mod):
        sys.modules.pop(m, None)


def _group(group: str, dist: str = "acme-trackers"):
    from importlib import metadata
    return [ep for ep in metadata.entry_points(group=group)
            if ep.dist is not None and ep.dist.metadata["Name"] == dist]


# --------------------------------------------------------------------------- third-party mechanism


def test_third_party_settings_reach_check_plugin_and_plugins_never_import_them(third_party):
    registry = Registry(entry_points=_group("dream2flow"))
    registry.discover()
    assert not registry.failures
    assert third_party["plugin"] in sys.modules and third_party["settings"] not in sys.modules  # `d2f plugins`

    table = SettingsTable(entry_points=_group(ENTRY_POINT_GROUP))
    s = table.get("tracker", third_party["name"])
    assert callable(s.options) and "entry point acme-file-tracker" in s.source and "(acme-trackers)" in s.source

    results = check_plugin(third_party["name"], registry=registry, settings=table)
    assert all_passed(results), format_results(results)
    by = {r.check: r for r in results}
    assert by["tracker_known_motion"].status == "passed"      # built with the file the settings wrote
    assert by["tracker_determinism"].status == "skipped"
    assert "documented skip for the test" in by["tracker_determinism"].message


def test_without_its_settings_the_same_plugin_cannot_be_built(third_party):
    registry = Registry(entry_points=_group("dream2flow"))
    results = check_plugin(third_party["name"], registry=registry, settings=SettingsTable(entry_points=[]))
    assert [(r.check, r.status) for r in results] == [("build", "failed")]
    assert "path" in results[0].message


def test_d2f_check_finds_the_settings_through_the_entry_point(third_party):
    env = dict(os.environ, PYTHONPATH=str(third_party["root"]))
    env.pop("D2F_STRICT_PLUGINS", None)
    out = subprocess.run([sys.executable, "-m", "d2f_core.cli", "check", third_party["name"], "--json"], env=env,
                         capture_output=True, text=True, timeout=120, cwd=third_party["root"])
    assert out.returncode == 0, out.stdout + out.stderr
    results = {r["check"]: r for r in json.loads(out.stdout)}
    assert results["tracker_known_motion"]["status"] == "passed"
    assert results["tracker_determinism"]["status"] == "skipped"


def test_module_colon_function_form(tmp_path, monkeypatch):
    (tmp_path / "acme_fn_settings.py").write_text(textwrap.dedent('''
        def my_settings(register):
            register("grasper", "acme-grasper", options={"width": 0.05})
    '''))
    _write_dist(tmp_path, "acme-fn", {ENTRY_POINT_GROUP: {"acme-grasper": "acme_fn_settings:my_settings"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        table = SettingsTable(entry_points=_group(ENTRY_POINT_GROUP, "acme-fn"))
        assert table.get("grasper", "acme-grasper").options == {"width": 0.05}
    finally:
        sys.modules.pop("acme_fn_settings", None)


def test_broken_settings_modules_are_reported_and_fatal_when_strict(tmp_path, monkeypatch):
    (tmp_path / "acme_bad_import.py").write_text("raise RuntimeError('broken on purpose')\n")
    (tmp_path / "acme_no_hook.py").write_text("x = 1\n")
    (tmp_path / "acme_bad_skip.py").write_text(textwrap.dedent('''
        def d2f_conformance_settings(register):
            register("tracker", "acme-t", skip={"tracker_known_moton": "typo"})
    '''))
    _write_dist(tmp_path, "acme-bad", {ENTRY_POINT_GROUP: {"a": "acme_bad_import", "b": "acme_no_hook",
                                                           "c": "acme_bad_skip"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = _group(ENTRY_POINT_GROUP, "acme-bad")
    try:
        with pytest.warns(RuntimeWarning) as record:
            table = SettingsTable(entry_points=eps, strict=False).discover()
        assert len(table.failures) == 3 and len(record) == 3
        text = "\n".join(table.failures)
        assert "broken on purpose" in text and "(acme-bad)" in text
        assert "defines no function d2f_conformance_settings(register)" in text
        assert "no tracker check named 'tracker_known_moton'; did you mean 'tracker_known_motion'" in text
        assert table.get("tracker", "acme-t").source == "none"  # nothing half-registered
        with pytest.warns(RuntimeWarning), pytest.raises(PluginLoadError, match="D2F_STRICT_PLUGINS"):
            SettingsTable(entry_points=eps, strict=True).discover()
    finally:
        for m in ("acme_bad_import", "acme_no_hook", "acme_bad_skip"):
            sys.modules.pop(m, None)


def test_register_validates_and_refuses_a_second_registration():
    table = SettingsTable(entry_points=[], builtin=False)
    with pytest.raises(ValueError, match="did you mean 'tracker'"):
        table.register("trackr", "x")
    with pytest.raises(TypeError, match="dict or a callable"):
        table.register("tracker", "x", options=[1, 2])
    with pytest.raises(ValueError, match="say why"):
        table.register("tracker", "x", skip={"tracker_known_motion": ""})
    table.register("tracker", "x", options={"a": 1})
    with pytest.raises(ValueError, match="already given by register_settings"):
        table.register("tracker", "x", options={"a": 2})
    table.register("tracker", "x", options={"a": 2}, replace=True)
    assert table.get("tracker", "x").options == {"a": 2}
    with pytest.raises(TypeError, match="must be a dict"):
        ConformanceSettings(options=lambda env: [1]).resolve_options(None, "x")


def test_a_third_party_cannot_take_over_a_built_in_plugins_settings():
    table = SettingsTable(entry_points=[])
    with pytest.raises(ValueError, match="already given by d2f_conformance.builtin"):
        table.register("video", "file", options={"path": "elsewhere.npz"}, source="entry point x")


# --------------------------------------------------------------------------- deprecated Manifest fields


def test_deprecated_manifest_fields_still_work_with_a_warning_and_settings_win():
    with pytest.warns(DeprecationWarning, match=r"Manifest\('old'\): check_options and check_skip are deprecated"):
        m = Manifest(name="old", kind="tracker", factory=lambda o: None, check_options={"a": 1},
                     check_skip={"tracker_determinism": "old style"})
    table = SettingsTable(entry_points=[], builtin=False)
    s = table.get("tracker", "old", m)
    assert s.options == {"a": 1} and s.skip == {"tracker_determinism": "old style"} and "deprecated" in s.source
    table.register("tracker", "old", options={"a": 2})
    assert table.get("tracker", "old", m).options == {"a": 2}


# --------------------------------------------------------------------------- the built-in table


def test_built_in_table_names_registered_plugins_and_keeps_their_settings():
    reg = get_registry()
    for kind, name in BUILTIN:
        reg.get(kind, name)  # raises when a plugin was renamed and its settings left behind
    assert settings_for("segmenter", "grounded-sam2").skip.keys() == {"segment_point_prompts"}
    assert settings_for("segmenter", "sim-mask").options == {"width": 160, "height": 120,
                                                             "unknown_text": "task_object"}
    assert settings_for("tracker", "lucas-kanade").source == "none"  # default options suffice


def test_playback_settings_write_the_scene(tmp_path):
    from d2f_conformance.scenes import CheckEnv, standard_scene

    env = CheckEnv(tmp_dir=tmp_path, scene=standard_scene())
    opts = settings_for("depth", "file").resolve_options(env, "file")
    assert opts["metric"] is True and np.load(opts["path"]).shape == env.scene.depth.shape
