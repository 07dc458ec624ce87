"""The `d2f` command line as users call it (subprocesses, like the acceptance tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path


from d2f_core.protocols import KINDS

ROOT = Path(__file__).resolve().parents[1]
D2F = [sys.executable, "-m", "d2f_core.cli"]


def d2f(*args, cwd=ROOT, env=None):
    e = dict(os.environ)
    e.pop("D2F_STRICT_PLUGINS", None)
    e.update(env or {})
    return subprocess.run(D2F + list(args), capture_output=True, text=True, cwd=cwd, env=e, timeout=120)


def test_plugins_json_lists_every_kind_usable():
    p = d2f("plugins", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    for r in rows:
        assert {"name", "kind", "package", "version", "status", "error", "capabilities", "extra"} <= set(r)
        assert r["status"] in ("ok", "unavailable", "failed")
        assert r["kind"] in KINDS or r["status"] == "failed"
    ok_kinds = {r["kind"] for r in rows if r["status"] == "ok"}
    assert set(KINDS) <= ok_kinds, f"kinds without a usable plugin: {set(KINDS) - ok_kinds}"
    assert not [r for r in rows if r["status"] == "failed" and r["package"] == "dream2flow"]


def test_plugins_table_shows_status():
    p = d2f("plugins")
    assert p.returncode == 0 and "zero-motion" in p.stdout and "ok" in p.stdout


def test_bad_config_is_one_clear_line_without_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("world: {plugin: tabletop-2d}\ntracker: {plugin: zero-moton}\n")
    p = d2f("run", str(cfg), "--out", str(tmp_path / "run"))
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "no tracker plugin named 'zero-moton'" in p.stderr and "Did you mean 'zero-motion'" in p.stderr
    p = d2f("run", str(cfg), "--set", "tracker.options.x=1", "--set", "tracker.plugin=zero-motion",
            "--out", str(tmp_path / "run"))
    assert p.returncode == 2 and "takes no options" in p.stderr and "Traceback" not in p.stderr
    p = d2f("run", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "config file not found" in p.stderr


def test_demo_stops_where_plugins_are_missing_and_says_so(tmp_path):
    out = tmp_path / "demo"
    p = d2f("demo", "--out", str(out), "--set", "world.plugin=no-such-world")
    assert p.returncode == 1
    res = json.loads((out / "result.json").read_text())
    assert res["stopped_at"] == "observe"
    assert "no-such-world" in res["message"] and "not installed" in res["message"]
    assert "no-such-world" in p.stderr
    assert (out / "config.yaml").exists() and (out / "manifest.json").exists()


def test_check_unknown_name_suggests(tmp_path):
    p = d2f("check", "zero-moton")
    assert p.returncode == 2 and "Did you mean 'zero-motion'" in p.stderr


BROKEN_TRACKER = '''
import numpy as np
from d2f_core import Manifest, Tracks2D, hookimpl

class Lazy:
    """Ignores the query frame: every track starts at the query's (x, y) on frame 0 and never moves."""
    name = "lazy"
    capabilities = frozenset({"zero_motion"})
    def track(self, video, queries):
        q = np.asarray(queries, np.float32)
        T, n = video.num_frames, len(q)
        xy = np.broadcast_to(q[None, :, 1:] + 3.0, (T, n, 2)).astype(np.float32)  # 3 px off
        return Tracks2D(xy=xy, visible=np.ones((T, n), bool), query_frame=q[:, 0].astype(np.int64))

@hookimpl
def d2f_register(register):
    register(Manifest(name="lazy", kind="tracker", factory=lambda o: Lazy()))
'''


def test_third_party_failures_through_the_cli(tmp_path):
    from test_registry import _write_dist
    _write_dist(tmp_path, "thirdparty", {"tp_raises": "raise ImportError('needs libfoo.so')",
                                         "tp_lazy": BROKEN_TRACKER},
                {"tp-raises": "tp_raises", "lazy": "tp_lazy"})
    env = {"PYTHONPATH": str(tmp_path)}
    rows = {r["name"]: r for r in json.loads(d2f("plugins", "--json", env=env).stdout)}
    assert rows["tp-raises"]["status"] == "failed" and "needs libfoo.so" in rows["tp-raises"]["error"]
    assert rows["tp-raises"]["package"] == "thirdparty" and rows["lazy"]["status"] == "ok"
    assert rows["zero-motion"]["status"] == "ok"  # the rest still works
    p = d2f("check", "lazy", env=env)
    assert p.returncode == 1
    assert "tracker_query_position" in p.stdout and "FAIL" in p.stdout
    assert d2f("check", "zero-motion", env=env).returncode == 0
    p = d2f("plugins", env={**env, "D2F_STRICT_PLUGINS": "1"})
    assert p.returncode == 2 and "needs libfoo.so" in p.stderr and "Traceback" not in p.stderr


def test_readme_plugin_table_lists_every_builtin_plugin():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("<!-- plugin-table -->"):text.index("<!-- /plugin-table -->")]
    rows = json.loads(d2f("plugins", "--json").stdout)
    for r in rows:
        if r["package"] == "dream2flow":
            assert f"| {r['kind']} | `{r['name']}` |" in table, f"README plugin table lacks {r['kind']} {r['name']}"
