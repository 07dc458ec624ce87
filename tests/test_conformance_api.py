"""The public API of d2f_conformance: check_plugin / check_component, results, formatting, and the
pytest base classes (subclassed directly here, and through pytester for failing cases)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

import broken_plugins as bp
from d2f_conformance import (CheckEnv, CheckResult, GrasperConformance, SolverConformance, TrackerConformance,
                             WorldConformance, all_passed, check_component, check_plugin, format_results)
from d2f_conformance.doubles import CartesianEmbodiment, TargetWorld, TranslationDynamics, default_problem
from d2f_core import Manifest
from d2f_core.registry import PluginNotFoundError, Registry, get_registry

pytest_plugins = ["pytester"]


def registry_with(*manifests: Manifest) -> Registry:
    reg = Registry(entry_points=[])
    for m in manifests:
        assert reg.add(m, distribution="tests"), reg.failures
    return reg


# --------------------------------------------------------------------------- check_plugin


def test_check_plugin_zero_motion_passes_everything_not_skipped():
    results = check_plugin("zero-motion")
    assert results and all_passed(results), format_results(results)
    assert {r.plugin for r in results} == {"zero-motion"} and {r.kind for r in results} == {"tracker"}
    by = {r.check: r for r in results}
    assert by["tracker_known_motion"].status == "passed"  # the zero_motion branch: tracks stay put
    assert by["tracker_channel_order"].status == "skipped" and "zero_motion" in by["tracker_channel_order"].message
    assert by["model_input_convention"].status == "skipped"
    assert sum(r.status == "passed" for r in results) >= 7


def test_factory_that_raises_gives_a_build_failure():
    def factory(options, ctx):
        raise RuntimeError("weights file is corrupt: re-download it")

    reg = registry_with(Manifest(name="exploding", kind="tracker", factory=factory))
    results = check_plugin("exploding", registry=reg)
    assert len(results) == 1
    r = results[0]
    assert (r.check, r.kind, r.plugin, r.status) == ("build", "tracker", "exploding", "failed")
    assert "RuntimeError: weights file is corrupt: re-download it" in r.message
    assert not all_passed(results)


def test_unavailable_plugin_is_a_skipped_build():
    reg = registry_with(Manifest(name="needs-gpu-model", kind="tracker", factory=lambda o: bp.ReferenceTracker(),
                                 available=lambda: "weights not found at ~/.cache/model.pt"))
    [r] = check_plugin("needs-gpu-model", "tracker", registry=reg)
    assert (r.check, r.status) == ("build", "skipped") and "weights not found" in r.message
    assert all_passed([r])


def test_invalid_options_give_a_build_failure_naming_the_key():
    class Opts(BaseModel):
        model_config = ConfigDict(extra="forbid")
        radius: int = Field(3, description="patch radius, pixels")

    reg = registry_with(Manifest(name="opt-tracker", kind="tracker", factory=lambda o, ctx: bp.ReferenceTracker(),
                                 options_model=Opts))
    [r] = check_plugin("opt-tracker", registry=reg, options={"radis": 2})
    assert r.status == "failed" and "radis" in r.message and "radius" in r.message


class FileQueriesTracker(bp.ReferenceTracker):
    """Tracks with the reference algorithm but needs a file (like a playback plugin)."""

    def __init__(self, path):
        self.offset = float(np.load(path))


def test_check_options_callable_gets_the_env_and_its_tmp_dir():
    seen = {}

    class Opts(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: str = Field(description="a .npy file")

    def check_options(env):
        seen["env"] = env
        assert isinstance(env, CheckEnv) and env.scene.video.num_frames == 8
        p = env.tmp_dir / "x.npy"
        np.save(p, np.float64(1.0))
        return {"path": str(p)}

    def factory(options, ctx):
        seen["workdir"] = ctx.workdir
        seen["embodiment"] = ctx.component("embodiment")
        return FileQueriesTracker(options.path)

    with pytest.warns(DeprecationWarning, match="check_options is deprecated"):  # still honoured
        reg = registry_with(Manifest(name="file-tracker", kind="tracker", factory=factory, options_model=Opts,
                                     check_options=check_options))
    results = check_plugin("file-tracker", registry=reg)
    assert all_passed(results), format_results(results)
    assert seen["workdir"] == seen["env"].tmp_dir and seen["embodiment"] is None
    assert not seen["env"].tmp_dir.exists()  # cleaned up afterwards


def test_kind_none_checks_every_kind_with_that_name():
    reg = registry_with(Manifest(name="twin", kind="tracker", factory=lambda o: bp.ReferenceTracker()),
                        Manifest(name="twin", kind="grasper", factory=lambda o: bp.GoodGrasper()))
    results = check_plugin("twin", registry=reg)
    assert {r.kind for r in results} == {"tracker", "grasper"} and all_passed(results)
    assert {r.kind for r in check_plugin("twin", "grasper", registry=reg)} == {"grasper"}


def test_unknown_plugin_name_raises_with_suggestion():
    reg = registry_with(Manifest(name="zero-motion", kind="tracker", factory=lambda o: bp.ReferenceTracker()))
    with pytest.raises(PluginNotFoundError, match="did you mean 'zero-motion'"):
        check_plugin("zero-moton", registry=reg)
    with pytest.raises(LookupError):
        check_plugin("zero-moton", "tracker", registry=reg)


def test_only_and_skip_select_checks_and_reject_unknown_names():
    res = check_component(bp.ReferenceTracker(), "tracker", only=["tracker_output_types", "tracker_known_motion"])
    assert [r.check for r in res] == ["tracker_output_types", "tracker_known_motion"]
    res = check_component(bp.ReferenceTracker(), "tracker", skip=["tracker_channel_order"])
    assert "tracker_channel_order" not in {r.check for r in res}
    with pytest.raises(ValueError, match="did you mean 'tracker_known_motion'"):
        check_component(bp.ReferenceTracker(), "tracker", only=["tracker_known_motoin"])
    with pytest.raises(ValueError, match="kind"):
        check_component(bp.ReferenceTracker(), "trackr")


def test_problem_factory_is_used_and_missing_capabilities_skip():
    calls = []

    def factory(env):
        calls.append(env)
        p = default_problem(env)
        p.dynamics = None
        return p

    class NeedsDynamics(bp.GoodSolver):
        capabilities = frozenset({"needs_dynamics", "needs_world", "needs_grasp"})

    res = {r.check: r for r in check_component(NeedsDynamics(), "solver", problem_factory=factory)}
    assert calls and res["solver_actions_within_bounds"].status == "skipped"
    assert "needs_dynamics" in res["solver_actions_within_bounds"].message
    assert "problem_factory" in res["solver_actions_within_bounds"].message


# --------------------------------------------------------------------------- results and formatting


def test_results_json_and_table():
    res = check_component(bp.UnsortedGrasper(), "grasper")
    data = json.loads(json.dumps([r.to_json() for r in res]))
    assert {d["status"] for d in data} <= {"passed", "failed", "skipped"}
    assert set(data[0]) == {"check", "kind", "plugin", "status", "message", "seconds"}
    table = format_results(res)
    assert "grasper_output_types" in table and "FAIL" in table and "PASS" in table
    assert "not sorted by score" in table and table.splitlines()[-1].endswith("0 skipped")
    with pytest.raises(ValueError):
        CheckResult("x", "tracker", "p", "ok")  # type: ignore[arg-type]
    with pytest.raises(Exception):
        res[0].status = "failed"  # frozen


def test_import_does_not_need_pytest():
    code = ("import sys, d2f_conformance as c; assert 'pytest' not in sys.modules; "
            "assert callable(c.check_plugin); c.TrackerConformance; assert 'pytest' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_doubles_pass_their_own_checks():
    for comp, kind in [(CartesianEmbodiment(), "embodiment"), (TargetWorld(), "world"),
                       (TranslationDynamics(), "dynamics")]:
        res = check_component(comp, kind)
        assert all_passed(res), format_results(res)
        # optional features a double lacks: the camera probe of simulated worlds, a bound world
        optional = {"world_camera_projection", "world_depth_plane", "embodiment_joint_action_bounds",
                    # capabilities the doubles do not declare (checked on the trainable double elsewhere)
                    "dynamics_trainable_round_trip", "dynamics_trainable_rejects_malformed_transitions"}
        res = [r for r in res if not (r.status == "skipped" and r.check in optional)]
        assert sum(r.status == "passed" for r in res) >= len(res) - 1, format_results(res)


def test_target_world_is_exact():
    w = TargetWorld()
    obs = w.reset(3)
    box = w.privileged_state()["box_xy"].copy()
    top = np.array([*box, w.box_size[2]])
    w.step(top)  # move onto the box's top centre (ee starts away from it: box does not move)
    assert np.allclose(w.privileged_state()["box_xy"], box)
    w.step(top + [0.03, 0.0, 0.0])  # carried 3 cm right
    assert np.allclose(w.privileged_state()["box_xy"], box + [0.03, 0.0]) and w.success()
    assert np.allclose(obs.joints, w.home)


def test_all_light_plugins_conform():
    """Every registered plugin that needs no extra library passes its checks (the heavy ones are
    checked by their own tests and by `d2f check` in CI)."""
    reg = get_registry()
    results = []
    for e in reg.entries():
        if not e.manifest.requires:
            results += check_plugin(e.manifest.name, e.manifest.kind, registry=reg)
    assert len({(r.plugin, r.kind) for r in results}) >= 10
    assert all_passed(results), format_results([r for r in results if r.status == "failed"])


# --------------------------------------------------------------------------- pytest base classes


class TestReferenceTrackerConformance(TrackerConformance):
    @pytest.fixture
    def component(self):
        return bp.ReferenceTracker()


class TestGoodGrasperConformance(GrasperConformance):
    @pytest.fixture
    def component(self):
        return bp.GoodGrasper()


class TestTargetWorldConformance(WorldConformance):
    @pytest.fixture
    def component(self):
        return TargetWorld()


class TestGoodSolverOnOwnProblem(SolverConformance):
    @pytest.fixture
    def component(self):
        return bp.GoodSolver()

    @pytest.fixture
    def problem_factory(self):
        return lambda env: default_problem(env, seed=5, speed=0.002)


def test_base_classes_generate_one_test_per_check():
    from d2f_conformance import CHECKS
    for cls, kind in [(TrackerConformance, "tracker"), (WorldConformance, "world")]:
        assert cls.kind == kind
        names = sorted(n for n in dir(cls) if n.startswith("test_"))
        assert names == sorted(f"test_{c.name}" for c in CHECKS[kind])


def test_base_class_reports_failures_and_skips_through_pytest(pytester):
    pytester.makepyfile(test_plugin="""
        import numpy as np
        import pytest
        from d2f_core import Tracks2D
        from d2f_core.validate import check_queries, check_video
        from d2f_conformance import TrackerConformance


        class FloatVisibility:
            name = "float-vis"
            capabilities = frozenset({"zero_motion"})

            def track(self, video, queries):
                check_video(video, "video")
                q = check_queries(queries, video)
                T = video.num_frames
                xy = np.broadcast_to(q[None, :, 1:], (T, len(q), 2)).astype(np.float32)
                class R: pass
                r = R(); r.xy = xy; r.visible = np.ones((T, len(q)), np.float32)
                r.query_frame = q[:, 0].astype(np.int64)
                return r


        class TestFloatVisibility(TrackerConformance):
            skip_checks = ("tracker_determinism",)

            @pytest.fixture
            def component(self):
                return FloatVisibility()


        class TestNoFixture(TrackerConformance):
            pass
    """)
    result = pytester.runpytest_inprocess("-q", "-rfs", "-p", "no:cacheprovider")
    out = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert "TestFloatVisibility::test_tracker_output_types" in out
    assert "visible is float32, expected bool" in out
    assert "skip_checks" in out  # the listed check is skipped with that reason
    assert "override the `component` fixture" in out  # the base class without a fixture says what to do
    n = sum(1 for k in dir(TrackerConformance) if k.startswith("test_"))
    # the root cause fails once; checks needing a well-formed output are skipped, naming it
    assert outcomes["failed"] == 1 and "fix tracker_output_types first" in out
    assert outcomes["errors"] == n  # every test of TestNoFixture errors in its fixture
    assert outcomes["passed"] + outcomes["skipped"] == n - 1 and outcomes["passed"] >= 4
