"""`--executor ray` (issue 15): episodes and batch flow extraction on a local Ray cluster (2 CPUs).

Skipped where Ray is not installed (extra `ray`). One Ray cluster for the whole module: it is slow to start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from d2f_core.acting.evaluate import evaluate  # noqa: E402
from d2f_core.acting.executors import (MODEL_KINDS, RayExecutor, SerialExecutor, make_executor,  # noqa: E402
                                       model_cache_registry)

RECIPE = "tabletop_push"  # pure numpy world, ~5 s an episode


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, configure_logging=False)
    yield
    ray.shutdown()


def _without_timings(summary: dict) -> dict:
    s = {k: v for k, v in summary.items() if k != "seconds"}
    s["results"] = [{k: v for k, v in r.items() if k != "seconds"} for r in summary["results"]]
    return s


def test_ray_summary_equals_serial_for_the_same_seeds(cluster, tmp_path):
    pytest.importorskip("cv2")
    seeds = [0, 1, 2]
    done: list[int] = []
    serial = evaluate(RECIPE, seeds, tmp_path / "serial")
    on_ray = evaluate(RECIPE, seeds, tmp_path / "ray", executor="ray",
                      progress=lambda n, total, rec: done.append(rec["seed"]))
    assert sorted(done) == seeds  # progress as episodes finish (in any order)
    assert _without_timings(serial) == _without_timings(on_ray)
    on_disk = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert _without_timings(on_disk) == _without_timings(json.loads((tmp_path / "serial" / "summary.json").read_text()))
    assert serial["successes"] >= 2, serial  # the recipe works: the comparison is not all failures
    assert [r["seed"] for r in on_ray["results"]] == seeds
    # the model actor pool (used when a component holds a model) gives the same summary too
    on_actors = evaluate(RECIPE, seeds, tmp_path / "actors", executor="ray",
                         executor_options={"model_actors": True, "workers": 2})
    assert _without_timings(on_actors) == _without_timings(serial)


def test_a_failing_episode_is_recorded_and_the_batch_goes_on(cluster, tmp_path):
    pytest.importorskip("cv2")
    out = tmp_path / "ev"
    (out / "seed1").mkdir(parents=True)
    # seed 1's run folder is owned by another live process (the lock holds our parent's PID): that episode fails
    (out / "seed1" / ".d2f.lock").write_text(f"{os.getppid()}\n")
    summary = evaluate(RECIPE, [0, 1], out, executor="ray")
    by_seed = {r["seed"]: r for r in summary["results"]}
    assert summary["episodes"] == 2
    assert by_seed[1]["success"] is False and "in use" in by_seed[1]["reason"], by_seed[1]
    assert by_seed[0]["reason"] == "" and by_seed[0]["success"] is True, by_seed[0]


def test_a_dead_worker_fails_its_job_only(cluster):
    def job(i):
        if i == 1:
            os._exit(3)  # the worker process dies, as on a segfault
        return i * 10

    ex = RayExecutor()
    got = {i: (v, err) for i, v, err in ex.map(job, [0, 1, 2])}
    assert got[0] == (0, None) and got[2] == (20, None)
    assert got[1][0] is None and got[1][1]
    got = {i: (v, err) for i, v, err in ex.map(job, [0, 1, 2], builds_model=True)}  # the actor pool too
    assert got[0] == (0, None) and got[2] == (20, None) and got[1][1]


def test_model_jobs_run_on_a_fixed_pool_of_actors(cluster):
    def pid(_):
        return os.getpid()

    pids = [v for _, v, err in RayExecutor(workers=2).map(pid, range(8), builds_model=True)]
    assert len(pids) == 8 and len(set(pids)) <= 2


def test_model_components_are_built_once_per_process():
    from d2f_core.registry import Manifest, Registry

    built = []

    class FakeDepth:
        name = "fake-depth"
        capabilities = frozenset({"needs_weights"})

        def estimate(self, video):  # pragma: no cover - never called
            raise NotImplementedError

    def factory(options, ctx=None):
        built.append(1)
        return FakeDepth()

    reg = Registry(entry_points=[])
    assert reg.add(Manifest(name="fake-depth", kind="depth", factory=factory,
                            capabilities=frozenset({"needs_weights"})))
    assert reg.add(Manifest(name="plain-depth", kind="depth", factory=factory))
    cached = model_cache_registry(reg)
    assert "depth" in MODEL_KINDS
    a, b = cached.create("depth", "fake-depth"), cached.create("depth", "fake-depth")
    assert a is b and len(built) == 1
    c, d = cached.create("depth", "plain-depth"), cached.create("depth", "plain-depth")
    assert c is not d and len(built) == 3
    assert cached.pm is reg.pm  # everything else is the registry's own


def test_a_config_with_a_model_component_is_marked_for_the_actor_pool():
    from types import SimpleNamespace

    from d2f_core.acting.executors import model_kinds
    from d2f_core.registry import Manifest, Registry

    class Fake:
        def segment(self, *a, **k):  # pragma: no cover
            raise NotImplementedError

    reg = Registry(entry_points=[])
    reg.add(Manifest(name="big-seg", kind="segmenter", factory=lambda o: Fake(),
                     capabilities=frozenset({"needs_weights"})))
    reg.add(Manifest(name="small-seg", kind="segmenter", factory=lambda o: Fake()))

    def cfg(plugin):
        return SimpleNamespace(component=lambda kind: SimpleNamespace(plugin=plugin) if kind == "segmenter" else None)

    assert model_kinds(cfg("big-seg"), reg) == ["segmenter"]
    assert model_kinds(cfg("small-seg"), reg) == []


def test_make_executor_names_the_choices():
    assert isinstance(make_executor("serial"), SerialExecutor)
    with pytest.raises(ValueError, match="--executor"):
        make_executor("dask")
    with pytest.raises(ValueError, match="--address"):
        make_executor("serial", address="auto")


# ------------------------------------------------------------------------------ batch flow extraction
def _scenes(root: Path) -> list[Path]:
    from d2f_conformance.scenes import standard_scene
    from d2f_core.flow.scene import write_scene

    out = []
    for i, speed in enumerate((0.004, 0.006)):
        sc = standard_scene(width=64, height=48, num_frames=6, speed=speed)
        out.append(write_scene(root / f"scene{i}", sc.rgbd, sc.task.instruction, sc.task.object, video=sc.video,
                               depth_frames=sc.depth, mask=sc.masks[0]))
    return out


def test_batch_flow_extraction_on_ray_resumes_and_records_failures(cluster, tmp_path):
    pytest.importorskip("cv2")
    pytest.importorskip("imageio_ffmpeg")
    from typer.testing import CliRunner

    from d2f_core import ObjectFlow
    from d2f_core.cli import app

    scenes = _scenes(tmp_path / "scenes")
    broken = tmp_path / "scenes" / "scene_broken"
    broken.mkdir()
    for f in scenes[0].iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "initial_depth.npy").write_bytes(b"not an array")
    out = tmp_path / "flows"
    args = ["flow", "extract", "--scenes", str(tmp_path / "scenes"), "--out", str(out), "--set", "flow.num_points=32",
            "--executor", "ray"]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 1, res.output  # one scene failed; the others were extracted
    batch = json.loads((out / "batch.json").read_text())
    status = {r["name"]: r["status"] for r in batch["results"]}
    assert status == {"scene0": "ok", "scene1": "ok", "scene_broken": "failed"}, batch
    assert "initial_depth" in next(r["reason"] for r in batch["results"] if r["name"] == "scene_broken")
    for s in ("scene0", "scene1"):
        assert ObjectFlow.load(out / s / "flow.npz").points.shape == (6, 32, 3)
    stamp = (out / "scene0" / "flow.npz").stat().st_mtime_ns

    # re-run (serially, naming the scenes one by one): finished scenes are skipped, the failed one is retried
    args = ["flow", "extract", "--scenes", str(scenes[0]), str(scenes[1]), "--out", str(out), "--set",
            "flow.num_points=32"]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    batch = json.loads((out / "batch.json").read_text())
    assert [r["status"] for r in batch["results"]] == ["skipped", "skipped"], batch
    assert (out / "scene0" / "flow.npz").stat().st_mtime_ns == stamp
    # another config is not "finished": it runs again
    args[-1] = "flow.num_points=24"
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert ObjectFlow.load(out / "scene1" / "flow.npz").points.shape == (6, 24, 3)


def test_eval_command_takes_the_executor(cluster, tmp_path):
    pytest.importorskip("cv2")
    from typer.testing import CliRunner

    from d2f_core.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["eval", RECIPE, "--seeds", "3", "--out", str(tmp_path / "a"), "--executor", "dask"])
    assert res.exit_code == 2 and "--executor" in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["eval", RECIPE, "--seeds", "3", "--out", str(tmp_path / "a"), "--address", "auto"])
    assert res.exit_code == 2 and "--executor ray" in res.output, res.output
    res = runner.invoke(app, ["eval", RECIPE, "--seeds", "3", "--out", str(tmp_path / "b"), "--executor", "ray"])
    assert res.exit_code == 0, res.output
    assert "seed 3:" in res.output
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["episodes"] == 1
