"""`d2f train`: a trainable dynamics model and a training solver, checkpoints, logs, resume after SIGKILL.

The learners are test doubles registered the way a third-party package registers plugins: a
distribution on a path entry whose entry point names a module with ``d2f_register``
(``d2f_train_doubles``, written below). The world is ``tabletop-2d`` with the ``point-mass`` pusher;
the flow the estimator starts from comes from the file stand-ins (one still frame of the block).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from d2f_conformance.doubles import LinearPushDynamics

ROOT = Path(__file__).resolve().parents[1]

DOUBLES = '''
"""Test plugins for d2f train (registered through an entry point, like any third-party plugin)."""
import json
import math
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from d2f_core import Manifest, hookimpl
from d2f_conformance.doubles import LinearPushDynamics


class LinearOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps_per_fit: int = 40
    lr: float = 0.01
    fit_seconds: float = 0.0   # sleep in every fit: slows training so a test can kill it mid-way
    fail_at: int = 0           # raise in this fit call (1-based; 0: never)


class SlowLinear(LinearPushDynamics):
    name = "linear-push"
    kind = "dynamics"
    Options = LinearOptions

    def __init__(self, o):
        super().__init__(3, lr=o.lr, steps_per_fit=o.steps_per_fit, seed=7)
        self.fit_seconds, self.fail_at, self.fits = o.fit_seconds, o.fail_at, 0

    def fit(self, transitions, *, progress=None):
        time.sleep(self.fit_seconds)
        self.fits += 1
        if self.fits == self.fail_at:
            raise RuntimeError("the model diverged")
        return super().fit(transitions, progress=progress)


class BlockParticles:
    """The flow's first-frame particles moved rigidly with the block's (x, y, yaw) (privileged)."""
    name = "block-particles"
    kind = "estimator"
    capabilities = frozenset({"privileged", "stand_in"})

    def reset(self, observation, flow):
        self.p0 = np.asarray(flow.points[0], np.float64)
        self.pose0 = np.asarray(observation.privileged["block_pose"], np.float64)

    def estimate(self, observation):
        x, y, yaw = np.asarray(observation.privileged["block_pose"], np.float64)
        x0, y0, yaw0 = self.pose0
        c, s = math.cos(yaw - yaw0), math.sin(yaw - yaw0)
        d = self.p0[:, :2] - [x0, y0]
        out = self.p0.copy()
        out[:, 0] = x + c * d[:, 0] - s * d[:, 1]
        out[:, 1] = y + s * d[:, 0] + c * d[:, 1]
        return out.astype(np.float32), np.ones(len(out), bool)


class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step_seconds: float = 0.0


class ToyLearner:
    """A 'trains' solver: its 'parameter' is the running mean of |action| over the random actions it took."""
    name = "toy-learner"
    kind = "solver"
    Options = ToyOptions
    capabilities = frozenset({"trains", "stand_in"})

    def __init__(self, o):
        self.o = o

    def solve(self, problem):
        raise NotImplementedError

    def train(self, env, out_dir, *, resume, budget, checkpoint_every, seed, progress=None, log=None):
        from d2f_core.acting.train import Checkpoints
        ck = Checkpoints(Path(out_dir) / "checkpoints")
        latest = ck.latest() if resume else None
        step, total, rng = 0, 0.0, np.random.default_rng(seed)
        if latest is not None:
            step, path, state = latest
            total = state["total"]
            rng.bit_generator.state = json.loads((path / "rng.json").read_text())
        env.reset(seed=seed + step)
        while step < budget:
            a = rng.uniform(env.action_space.low, env.action_space.high)
            _, r, term, trunc, _ = env.step(a)
            total += float(np.abs(a).sum())  # depends on the RNG only: a resume can reproduce it
            step += 1
            time.sleep(self.o.step_seconds)
            if term or trunc:
                env.reset(seed=seed + step)
            m = {"value": total / step}
            if progress:
                progress(step, budget, m)
            if log and step % 5 == 0:
                log(step, m)
            if step % checkpoint_every == 0 or step == budget:
                st = json.dumps(rng.bit_generator.state)
                ck.save(step, lambda d: (d / "rng.json").write_text(st), {"total": total})
        return {"value": total / budget}


@hookimpl
def d2f_register(register):
    for component in (SlowLinear, BlockParticles, ToyLearner):
        register(Manifest.of(component))
'''

WORLD = {"width": 160, "height": 120, "render_observations": False, "start_range": 0.0}
PUSHER = {"joint_limits": [[-0.09, 0.09], [-0.09, 0.09], [0.0, 0.03]]}
"""The pusher's random targets stay around the block, below its top: most steps push it."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(plugin path entry, dynamics config path, solver config path)."""
    tmp = tmp_path_factory.mktemp("train")
    plugins = tmp / "plugins"
    plugins.mkdir()
    info = plugins / "d2f_train_doubles-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: d2f-train-doubles\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dream2flow]\ntrain-doubles = d2f_train_doubles\n")
    (plugins / "d2f_train_doubles.py").write_text(textwrap.dedent(DOUBLES))
    # the flow's stand-ins: one still frame of the block (video, metric depth, mask) at the config's seed
    from PIL import Image

    from d2f_plugins.video.file_video import write_video
    from d2f_plugins.world.tabletop_2d import Tabletop2DOptions, Tabletop2DWorld
    world = Tabletop2DWorld(Tabletop2DOptions(**WORLD))
    world.reset(0)
    view = world.render()
    write_video(tmp / "video.npz", np.stack([view.rgb, view.rgb]), 8.0)
    np.save(tmp / "depth.npy", np.stack([view.depth, view.depth]))
    Image.fromarray(world.object_mask("block").astype(np.uint8) * 255).save(tmp / "mask.png")
    base = {"name": "train-test", "seed": 0, "world": {"plugin": "tabletop-2d", "options": WORLD},
            "embodiment": {"plugin": "point-mass", "options": PUSHER}}
    dyn = {**base,
           "video": {"plugin": "file", "options": {"path": str(tmp / "video.npz")}},
           "depth": {"plugin": "file", "options": {"path": str(tmp / "depth.npy"), "metric": True}},
           "segmenter": {"plugin": "file", "options": {"path": str(tmp / "mask.png")}},
           "tracker": {"plugin": "zero-motion"},
           "estimator": {"plugin": "block-particles"},
           "dynamics": {"plugin": "linear-push"},
           "flow": {"num_points": 32, "num_frames": 2, "pictures": False, "movable_filter": False},
           "train": {"transitions": 60, "chunk": 10, "steps": 8}}
    (tmp / "dynamics.yaml").write_text(yaml.safe_dump(dyn))
    (tmp / "solver.yaml").write_text(yaml.safe_dump({**base, "solver": {"plugin": "toy-learner"},
                                                     "train": {"steps": 40, "checkpoint_every": 10}}))
    return plugins, tmp / "dynamics.yaml", tmp / "solver.yaml"


@pytest.fixture
def registry(setup, monkeypatch):
    from d2f_core.registry import Registry
    monkeypatch.syspath_prepend(str(setup[0]))
    return Registry(strict=False)


def d2f(setup, *args, wait=True):
    env = dict(os.environ)
    env.pop("D2F_STRICT_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(setup[0]), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "d2f_core.cli", "train", *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def rows(out: Path, learner: str) -> list[dict]:
    with open(out / "log.csv") as f:
        return [r for r in csv.DictReader(f) if r["learner"] == learner]


def weights(path: Path) -> np.ndarray:
    with np.load(path / LinearPushDynamics.FILE) as z:
        return z["W"].copy()


def mse(model: LinearPushDynamics, data: dict) -> float:
    """Mean squared error of the double's shared displacement on transitions (its fit loss)."""
    shift = np.concatenate([data["actions"], np.ones((len(data["actions"]), 1))], axis=1) @ model.W
    return float(np.mean((shift - (data["next_points"] - data["points"]).astype(np.float64).mean(axis=1)) ** 2))


def _train(setup, registry, out, overrides=(), **kw):
    from d2f_core.acting.train import load_train_config, train
    cfg, tc = load_train_config(setup[1], list(overrides))
    return train(cfg, out, train_config=tc, registry=registry, **kw)


# ============================================================================ in-process


def test_dynamics_training_collects_fits_and_writes_the_folder(setup, registry, tmp_path):
    out = tmp_path / "run"
    status = _train(setup, registry, out)
    assert status["status"] == "done" and list(status["learners"]) == ["dynamics"]
    info = status["learners"]["dynamics"]
    assert info["step"] == info["total"] == 8 and info["transitions"] == 60
    # 6 chunks of 10 transitions, particles N x 3 that the estimator moved where the pusher hit the block
    chunks = sorted((out / "dynamics" / "data").glob("chunk-*.npz"))
    assert len(chunks) == 6
    with np.load(chunks[0]) as z:
        assert z["points"].shape == (10, 32, 3) and z["actions"].shape == (10, 3)
        assert z["next_points"].dtype == np.float32
    log = rows(out, "dynamics")
    assert [int(r["step"]) for r in log] == list(range(1, 9))
    assert [int(float(r["transitions"])) for r in log] == [10, 20, 30, 40, 50, 60, 60, 60]
    loss = [float(r["loss"]) for r in log]
    assert all(np.isfinite(loss))
    data = {k: np.concatenate([np.load(c)[k] for c in chunks]) for k in ("points", "actions", "next_points")}
    moved = np.abs((data["next_points"] - data["points"]).mean(axis=1)).max(axis=1) > 1e-3
    assert moved.mean() > 0.2  # the data holds pushes, not only free moves of the pusher
    untrained = LinearPushDynamics(3, seed=7)  # the plugin's initial weights
    trained = LinearPushDynamics(3)
    trained.load(str(out / "dynamics" / "model"))
    assert mse(trained, data) < 0.5 * mse(untrained, data)  # the loss falls
    assert mse(trained, data) == pytest.approx(loss[-1], rel=1e-6)
    assert all(float(b["wall_seconds"]) >= float(a["wall_seconds"]) for a, b in zip(log, log[1:]))
    # checkpoints: the newest two, complete; the final model equals the last checkpoint's
    ck = sorted(p.name for p in (out / "dynamics" / "checkpoints").iterdir())
    assert ck == ["step-00000007", "step-00000008"]
    np.testing.assert_array_equal(weights(out / "dynamics" / "model"),
                                  weights(out / "dynamics" / "checkpoints" / "step-00000008" / "model"))
    state = json.loads((out / "dynamics" / "checkpoints" / "step-00000008" / "state.json").read_text())
    assert state["step"] == 8 and state["chunks"] == 6 and state["metrics"]["loss"] == pytest.approx(loss[-1])
    assert json.loads((out / "train.json").read_text())["status"] == "done"
    events = (out / "train.log").read_text()
    assert "tensorboard" in events  # says whether TensorBoard events are written (not installed here: CSV only)
    assert yaml.safe_load((out / "train.yaml").read_text())["transitions"] == 60
    assert yaml.safe_load((out / "config.yaml").read_text())["dynamics"]["plugin"] == "linear-push"


def test_resume_extends_training_and_drops_rows_after_the_checkpoint(setup, registry, tmp_path):
    out = tmp_path / "run"
    _train(setup, registry, out, ["train.steps=3", "train.checkpoint_every=2"])
    # a killed run logged step 3 but checkpointed only step 2 (and then the last step, 3)
    assert [int(r["step"]) for r in rows(out, "dynamics")] == [1, 2, 3]
    import shutil
    shutil.rmtree(out / "dynamics" / "checkpoints" / "step-00000003")  # as if killed before that checkpoint
    (out / "dynamics" / "checkpoints" / ".step-00000003.tmp-1-dead").mkdir()  # a torn checkpoint write
    with open(out / "log.csv", "a") as f:
        f.write("dynamics,4,1.0,0.5")  # a torn last line
    status = _train(setup, registry, out, ["train.steps=5", "train.checkpoint_every=2"], resume=True)
    assert status["learners"]["dynamics"]["step"] == 5
    assert [int(r["step"]) for r in rows(out, "dynamics")] == [1, 2, 3, 4, 5]
    assert "resumed from checkpoint step 2" in (out / "train.log").read_text()
    assert not list((out / "dynamics" / "checkpoints").glob(".*"))
    # same model as training 5 rounds in one go
    ref = tmp_path / "ref"
    _train(setup, registry, ref, ["train.steps=5"])
    np.testing.assert_allclose(weights(out / "dynamics" / "model"), weights(ref / "dynamics" / "model"), atol=1e-12)


def test_tensorboard_gets_the_rows_and_a_resume_purges_what_follows_the_checkpoint(setup, registry, tmp_path,
                                                                                       monkeypatch):
    import d2f_core.acting.train as train_module
    writers = []

    class FakeWriter:  # tensorboard is not installed here: record what SummaryWriter would get
        def __init__(self, log_dir, purge_step):
            self.log_dir, self.purge_step, self.scalars = log_dir, purge_step, []
            writers.append(self)

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, step))

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(train_module, "_summary_writer", FakeWriter)
    out = tmp_path / "run"
    _train(setup, registry, out, ["train.steps=2"])
    assert writers[0].purge_step is None and writers[0].log_dir == out / "tensorboard"
    assert ("dynamics/loss", 1) in writers[0].scalars and ("dynamics/loss", 2) in writers[0].scalars
    _train(setup, registry, out, ["train.steps=3"], resume=True)
    assert writers[1].purge_step == 3 and {s for _, s in writers[1].scalars} == {3}
    assert "tensorboard: events in tensorboard/" in (out / "train.log").read_text()
    _train(setup, registry, tmp_path / "off", ["train.steps=1", "train.tensorboard=false"])
    assert len(writers) == 2


def test_solver_that_trains_gets_env_budget_and_logs(setup, registry, tmp_path):
    from d2f_core.acting.train import load_train_config, train
    cfg, tc = load_train_config(setup[2])
    out = tmp_path / "solver"
    status = train(cfg, out, train_config=tc, registry=registry)
    assert list(status["learners"]) == ["solver"] and status["learners"]["solver"]["step"] == 40
    assert [int(r["step"]) for r in rows(out, "solver")] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert sorted(p.name for p in (out / "solver" / "checkpoints").iterdir()) == ["step-00000030", "step-00000040"]
    # resume with a larger budget: continues from step 40
    status = train(cfg, out, train_config=tc.model_copy(update={"steps": 50}), registry=registry, resume=True)
    assert [int(r["step"]) for r in rows(out, "solver")][-2:] == [45, 50]
    ref = tmp_path / "ref"
    ref_status = train(cfg, ref, train_config=tc.model_copy(update={"steps": 50}), registry=registry)
    assert status["learners"]["solver"]["metrics"]["value"] == pytest.approx(
        ref_status["learners"]["solver"]["metrics"]["value"], rel=1e-12)


def test_train_options_are_validated_with_the_field_named(setup):
    from d2f_core.acting.train import load_train_config
    from d2f_core.config import ConfigError
    with pytest.raises(ConfigError, match=r"train\.stpes: unknown key; did you mean 'steps'\?"):
        load_train_config(setup[1], ["train.stpes=3"])
    with pytest.raises(ConfigError, match=r"train\.chunk: .*greater than or equal to 1"):
        load_train_config(setup[1], ["train.chunk=0"])
    cfg, tc = load_train_config(setup[1], ["train.steps=3", "seed=5"])
    assert tc.steps == 3 and tc.transitions == 60 and cfg.seed == 5


def test_collection_uses_the_models_sample_actions_and_is_deterministic(setup, registry, tmp_path):
    from d2f_core import make_env
    from d2f_core.acting.train import collect_round, load_train_config

    class Sampler(LinearPushDynamics):
        capabilities = LinearPushDynamics.capabilities | {"sample_actions"}

        def sample_actions(self, points, n, rng):
            return points.mean(axis=0)[None] + rng.uniform(-0.02, 0.02, size=(n, 3))  # at the object

    cfg, _ = load_train_config(setup[1])
    env = make_env(cfg, seed=0, workdir=tmp_path / "perception", registry=registry)
    a = collect_round(env, Sampler(3), 12, seed=0, round_index=3)
    b = collect_round(env, Sampler(3), 12, seed=0, round_index=3)
    c = collect_round(env, Sampler(3), 12, seed=0, round_index=4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["actions"], c["actions"])
    # every action was drawn around the particles the model was shown
    np.testing.assert_array_less(np.abs(a["actions"] - a["points"].mean(axis=1)), 0.02 + 1e-6)
    env.close()


def test_a_second_process_cannot_train_in_the_same_folder(setup, registry, tmp_path):
    import fcntl

    from d2f_core.acting.train import TrainError
    out = tmp_path / "locked"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TrainError, match="another d2f train is using this folder"):
            _train(setup, registry, out)


def test_atomic_dir_leaves_the_old_folder_when_the_write_fails(tmp_path):
    from d2f_core.acting.train import Checkpoints, atomic_dir
    with atomic_dir(tmp_path / "ck") as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "ck") as d:
            (d / "a").write_text("2")
            raise RuntimeError("killed mid-write")
    assert (tmp_path / "ck" / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    # a kill between moving the old folder aside and renaming the new one in: clean() puts the old one back
    import os
    os.replace(tmp_path / "ck", tmp_path / ".ck.old-123-abcd")
    (tmp_path / ".ck.tmp-123-abcd").mkdir()
    Checkpoints(tmp_path).clean()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"] and (tmp_path / "ck" / "a").read_text() == "1"


# ============================================================================ command line


def test_cli_errors_are_one_line_with_exit_2(setup, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something").write_text("x")
    p = d2f(setup, setup[1], "--out", out)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--resume" in p.stderr and "not empty" in p.stderr
    p = d2f(setup, setup[1], "--out", tmp_path / "a", "--set", "dynamics.plugin=heuristic")
    assert p.returncode == 2 and "nothing in config" in p.stderr and "'trainable'" in p.stderr
    assert "linear-push" in p.stderr  # names what is installed that can learn
    p = d2f(setup, setup[1], "--out", tmp_path / "b", "--set", "train.stpes=2")
    assert p.returncode == 2 and "did you mean 'steps'" in p.stderr
    p = d2f(setup, setup[1], "--out", tmp_path / "c", "--set", "estimator=null")
    assert p.returncode == 2 and "estimator: collecting transitions" in p.stderr and "sim-particles" in p.stderr
    # a learner that fails: exit 1, one line, train.json says so, the checkpoints before it stay
    p = d2f(setup, setup[1], "--out", tmp_path / "d", "--set", "dynamics.options.fail_at=3")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "training failed: RuntimeError: the model diverged" in p.stderr and "--resume" in p.stderr
    status = json.loads((tmp_path / "d" / "train.json").read_text())
    assert status["status"] == "failed: dynamics: RuntimeError: the model diverged"
    assert (tmp_path / "d" / "dynamics" / "checkpoints" / "step-00000002").is_dir()


def test_sigkilled_training_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one(setup, tmp_path):
    slow = ["--set", "dynamics.options.fit_seconds=0.4"]
    ref = tmp_path / "ref"
    p = d2f(setup, setup[1], "--out", ref)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "killed"
    proc = d2f(setup, setup[1], "--out", out, *slow, wait=False)
    ck = out / "dynamics" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (ck.is_dir() and any(p.name.startswith("step-") for p in ck.iterdir())):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    status = json.loads((out / "train.json").read_text())
    assert status["status"] == "running"  # killed: nothing had the chance to say otherwise
    done_before = max(int(p.name[5:]) for p in ck.iterdir() if p.name.startswith("step-"))
    assert 1 <= done_before < 8
    first_chunk = (out / "dynamics" / "data" / "chunk-00000.npz").stat().st_mtime_ns
    # without --resume the folder is refused; with it the training continues
    assert d2f(setup, setup[1], "--out", out, *slow).returncode == 2
    p = d2f(setup, setup[1], "--out", out, "--resume")  # another config (no slow fit) is refused
    assert p.returncode == 2 and "another run config" in p.stderr
    p = d2f(setup, setup[1], "--out", out, *slow, "--resume")
    assert p.returncode == 0, p.stderr
    assert f"resumed from checkpoint step {done_before}" in (out / "train.log").read_text()
    assert (out / "dynamics" / "data" / "chunk-00000.npz").stat().st_mtime_ns == first_chunk  # not collected again
    status = json.loads((out / "train.json").read_text())
    assert status["status"] == "done" and status["learners"]["dynamics"]["step"] == 8
    assert [int(r["step"]) for r in rows(out, "dynamics")] == list(range(1, 9))
    # deterministic (one thread, seeded collection, numpy Adam): the same model as the uninterrupted run
    np.testing.assert_allclose(weights(out / "dynamics" / "model"), weights(ref / "dynamics" / "model"),
                               rtol=0, atol=1e-12)
    # resuming a finished training does nothing more
    p = d2f(setup, setup[1], "--out", out, *slow, "--resume")
    assert p.returncode == 0 and [int(r["step"]) for r in rows(out, "dynamics")] == list(range(1, 9))


# ============================================================================ conformance


def test_trainable_checks_pass_the_double_and_catch_a_load_that_restores_nothing():
    from d2f_conformance import check_component

    class ForgetfulLoad(LinearPushDynamics):
        def load(self, directory):
            pass

    results = {r.check: r for r in check_component(LinearPushDynamics(3), "dynamics")}
    assert results["dynamics_trainable_round_trip"].status == "passed", results["dynamics_trainable_round_trip"]
    bad = {r.check: r for r in check_component(ForgetfulLoad(3), "dynamics")}
    assert bad["dynamics_trainable_round_trip"].status == "failed"
    assert "load" in bad["dynamics_trainable_round_trip"].message
