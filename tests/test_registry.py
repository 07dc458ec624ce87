"""Plugin discovery: entry points, failures recorded not fatal, strict mode, did-you-mean, options."""

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest
from pydantic import BaseModel, ConfigDict, Field

from d2f_core.registry import (Manifest, OptionsError, PluginLoadError, PluginNotFoundError,
                               PluginUnavailableError, Registry)


def _write_dist(tmp_path, dist, modules: dict[str, str], entry_points: dict[str, str], version="1.2.3"):
    """A minimal installed distribution (dist-info + modules) on a path entry."""
    info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[dream2flow]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, src in modules.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(src))


GOOD = """
from d2f_core import Manifest, hookimpl
from pydantic import BaseModel, ConfigDict, Field

class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_size: int = Field(7, description="pixels")

class T:
    name = "good-tracker"
    capabilities = frozenset()
    def __init__(self, o): self.o = o
    def track(self, video, queries): raise NotImplementedError

@hookimpl
def d2f_register(register):
    register(Manifest(name="good-tracker", kind="tracker", factory=lambda o: T(o), options_model=Opts,
                      description="a tracker"))
"""

RAISES = """
raise RuntimeError("boom: missing native library")
"""

MALFORMED = """
from d2f_core import Manifest, hookimpl

@hookimpl
def d2f_register(register):
    register({"name": "dict-not-manifest"})
    register(Manifest(name="bad-kind", kind="trackr", factory=lambda o: None))
    register(Manifest(name="BadName", kind="tracker", factory=lambda o: None))
    register(Manifest(name="future", kind="tracker", factory=lambda o: None, api_version=99))
    register(Manifest(name="ok-after-bad", kind="hand", factory=lambda o: None))
"""

BADHOOK = """
from d2f_core import hookimpl

@hookimpl
def d2f_register(registr):   # wrong argument name: pluggy rejects it
    pass
"""


@pytest.fixture
def fake_dists(tmp_path, monkeypatch):
    _write_dist(tmp_path, "good-dist", {"good_mod": GOOD}, {"good-tracker": "good_mod"})
    _write_dist(tmp_path, "broken-dist", {"raises_mod": RAISES, "malformed_mod": MALFORMED, "badhook_mod": BADHOOK},
                {"raiser": "raises_mod", "malformed": "malformed_mod", "badhook": "badhook_mod"}, version="0.0.1")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _eps():
    return metadata.entry_points(group="dream2flow")


def test_failures_are_recorded_and_others_still_work(fake_dists):
    reg = Registry(strict=False).discover()
    rows = {(r["name"], r["status"]): r for r in reg.rows()}
    failed = {r["name"]: r for r in reg.rows() if r["status"] == "failed"}
    assert "raiser" in failed
    r = failed["raiser"]
    assert r["package"] == "broken-dist" and r["version"] == "0.0.1"
    assert "RuntimeError: boom: missing native library" in r["error"]
    assert "badhook" in failed and "invalid hook implementation" in failed["badhook"]["error"]
    reasons = " ".join(f["error"] for f in reg.rows() if f["status"] == "failed")
    assert "takes a d2f_core.Manifest" in reasons
    assert "kind 'trackr'" in reasons and "did you mean 'tracker'" in reasons
    assert "must be lower-case" in reasons
    assert "targets core API 99" in reasons
    # the good plugins of every distribution still load, including the one after bad registrations
    assert ("good-tracker", "ok") in rows and ("ok-after-bad", "ok") in rows
    good = reg.create("tracker", "good-tracker", {"window_size": 9})
    assert good.o.window_size == 9
    # built-in plugins are unaffected
    assert any(r["name"] == "zero-motion" and r["status"] == "ok" for r in reg.rows())


def test_strict_mode_raises(fake_dists, monkeypatch):
    monkeypatch.setenv("D2F_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="raiser.*boom"):
        Registry().discover()


def test_unknown_name_suggests_close_matches(fake_dists):
    reg = Registry(strict=False)
    with pytest.raises(PluginNotFoundError) as e:
        reg.get("tracker", "good-trackr", where="tracker.plugin")
    msg = str(e.value)
    assert "Did you mean 'good-tracker'" in msg
    assert "Installed tracker plugins:" in msg and "zero-motion" in msg
    assert "tracker.plugin" in msg


def test_options_validated_by_the_plugins_model(fake_dists):
    reg = Registry(strict=False)
    with pytest.raises(OptionsError) as e:
        reg.create("tracker", "good-tracker", {"windw_size": 3}, where="tracker")
    msg = str(e.value)
    assert "tracker.options.windw_size: unknown key; did you mean 'window_size'?" in msg
    assert "Valid keys: window_size" in msg and "'good-tracker'" in msg
    with pytest.raises(OptionsError, match="window_size.*got 'big'"):
        reg.create("tracker", "good-tracker", {"window_size": "big"})


def test_unavailable_plugin_says_how_to_fix():
    reg = Registry(entry_points=[], strict=True)

    class Opts(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weights: str | None = Field(None, description="local folder")

    reg.add(Manifest(name="needs-lib", kind="video", factory=lambda o: None, extra="wan",
                     requires=("surely_not_an_installed_module_xyz",)))
    reg.add(Manifest(name="needs-key", kind="video", factory=lambda o: None, options_model=Opts,
                     available=lambda: "set KLING_ACCESS_KEY"))
    rows = {r["name"]: r for r in reg.rows()}
    assert rows["needs-lib"]["status"] == "unavailable"
    assert "pip install 'dream2flow[wan]'" in rows["needs-lib"]["error"]
    assert rows["needs-key"]["error"] == "set KLING_ACCESS_KEY"
    with pytest.raises(PluginUnavailableError, match="surely_not_an_installed_module_xyz"):
        reg.create("video", "needs-lib")


def test_duplicate_names_are_refused_per_kind_but_allowed_across_kinds():
    reg = Registry(entry_points=[], strict=True)
    assert reg.add(Manifest(name="file", kind="video", factory=lambda o: None), distribution="a")
    assert reg.add(Manifest(name="file", kind="depth", factory=lambda o: None), distribution="a")
    assert not reg.add(Manifest(name="file", kind="video", factory=lambda o: None), distribution="b")
    assert "duplicate video plugin name 'file', already registered by a" in reg.failures[0].reason


def test_factory_must_build_the_protocol():
    reg = Registry(entry_points=[], strict=True)
    reg.add(Manifest(name="empty", kind="tracker", factory=lambda o: object()))
    with pytest.raises(Exception, match=r"without track\(\).*Tracker"):
        reg.create("tracker", "empty")


def test_builtin_plugins_are_entry_points_of_this_distribution():
    names = {ep.name for ep in _eps() if ep.dist and ep.dist.metadata["Name"] == "dream2flow"}
    assert {"zero-motion", "file-video", "tabletop-2d", "point-mass", "replay"} <= names


def test_import_is_light_and_fast():
    code = ("import sys, time; t = time.perf_counter(); import d2f_core; dt = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'mujoco', 'cv2', 'robosuite', 'diffusers', 'pybullet', 'sam2', "
            "'PIL', 'imageio', 'matplotlib', 'scipy', 'pydantic') if m in sys.modules]; print(heavy, dt)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, dt = out.rsplit(" ", 1)
    assert heavy == "[]", f"import d2f_core loaded heavy modules: {heavy}"
