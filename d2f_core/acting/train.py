"""``d2f train``: whatever a run config learns, with checkpoints, resume after a kill, progress and logs.

**What learns.** ``d2f train CONFIG --out DIR`` trains, in this order:

* the config's **dynamics** model when its plugin declares capability ``trainable``
  (:class:`d2f_core.protocols.TrainableDynamics`: ``fit(transitions, progress=None) -> metrics``,
  ``save(dir)``, ``load(dir)``);
* the config's **solver** when its plugin declares capability ``trains`` (:class:`TrainingSolver`
  below: it learns by acting in the config's :class:`~.env.FlowEnv`, e.g. SAC with the flow reward).

A config in which nothing learns is an error (exit 2) naming both plugins and the capabilities.

**Dynamics: data collection and fitting.** Training is a sequence of *rounds* (a round is one
*step* of ``train.steps``). While fewer than ``train.transitions`` transitions have been collected, a
round first collects ``train.chunk`` more from the config's world, through the env ``make_env``
builds (``DIR/perception`` caches the perception stages): the world is reset with a seed drawn from
``numpy.random.default_rng([seed, round])``, then, ``chunk`` times, the particles ``P`` are read from
the config's **estimator** (``sim-particles`` in simulation: "particles from the simulator's object
poses", as the paper's Push-T training), an action ``a`` is drawn, applied as one world step, and the
estimator's particles after it are ``P'``. The action is ``dynamics.sample_actions(P, 1, rng)`` when the
model declares ``sample_actions``, else uniform in the world's action bounds; so the model's actions
must be the world's action vector (``action_dim`` = the world's), except on a world with capability
``pushes`` (``pusht``): there a push model's transition is one whole push (:meth:`FlowEnv.push`), the
paper's "random-push transitions". An episode that ends (success or
horizon) is reset with the round's next seed. Then ``fit`` is called on **all** transitions collected
so far (``points`` K x N x 3, ``actions`` K x action_dim, ``next_points`` K x N x 3; float32 metres,
world frame) and must *continue* from the model's current parameters and optimiser state. Rounds
after the last collection fit again on the full data set. ``fit``'s ``progress`` argument is a
callable ``progress(done, total, metrics)`` (``total`` may be None) for the bar.

**Solvers that train** follow this sub-protocol (``d2f_core.protocols`` should hold its text)::

    @runtime_checkable
    class TrainingSolver(Solver, Protocol):
        \"\"\"A solver that learns by acting (capability ``trains``); ``d2f train`` drives it.\"\"\"

        def train(self, env: Any, out_dir: str, *, resume: bool, budget: int, checkpoint_every: int,
                  seed: int, progress: Callable[[int, int, Mapping[str, float]], None] | None = None,
                  log: Callable[[int, Mapping[str, float]], None] | None = None) -> Mapping[str, float]:
            \"\"\"Learn in ``env`` (a FlowEnv: Gymnasium API, the config's world, reward and estimator) for
            ``budget`` environment steps in all, counting those done before a resume. Write checkpoints into
            ``out_dir`` every ``checkpoint_every`` steps (atomically: :func:`d2f_core.acting.train.atomic_dir`
            or :class:`~d2f_core.acting.train.Checkpoints`), holding everything needed to continue (weights,
            optimiser, replay buffer, RNG, step counter); with ``resume`` continue from the latest one
            (start afresh when there is none). Call ``progress(step, budget, metrics)`` as it goes and
            ``log(step, metrics)`` for each row of DIR/log.csv (a step logged again after a resume
            replaces the rows from that step on). Leave what ``solve`` needs to act with the trained
            policy in ``out_dir``. Returns the final metrics.\"\"\"

  :func:`train_sb3` is that method's body for any Stable-Baselines3 algorithm (SAC with the paper's
  hyper-parameters: :data:`PAPER_SAC`).

**The training folder** (``--out DIR``)::

    DIR/train.json              status (running / done / failed: ...), learners, step and total of each,
                                seed, the config's hash; rewritten atomically
    DIR/config.yaml             the resolved run config; DIR/train.yaml the resolved train options
    DIR/log.csv                 learner, step, wall_seconds, then one column per metric
    DIR/train.log               what happened, one line each (start, resume, checkpoints, TensorBoard)
    DIR/tensorboard/            TensorBoard events, when ``tensorboard`` is installed (else train.log says so)
    DIR/perception/             the perception stages' run folder (cached like ``d2f run``)
    DIR/dynamics/data/          chunk-NNNNN.npz: each round's transitions, written once
    DIR/dynamics/checkpoints/   step-NNNNNNNN/ {model/ (dynamics.save), state.json}; the newest ``keep``
    DIR/dynamics/model/         the trained model (dynamics.save) once training is done
    DIR/solver/                 the solver's folder (its checkpoints and its trained policy)

**Checkpoints are atomic**: a checkpoint is written into a hidden temporary folder with a unique name
and renamed into place (``os.replace``), so a killed process leaves either the previous checkpoint or
the new one, never half of one; leftovers of a killed write are deleted on the next start.

**Resume.** ``--resume`` continues from the newest checkpoint: the model (weights and optimiser, via
``load``), the transitions collected so far (the chunks the checkpoint counts), the step counter and
the wall time; the data-collection RNG is derived from (seed, round), so a resumed training collects
what an uninterrupted one would and, with a deterministic ``fit``, ends with the same model. Rows of
log.csv after the checkpoint's step are dropped. A resume needs the same run config and seed (else an
error naming what changed); ``train.steps`` may grow, to train longer. Without ``--resume`` a non-empty
DIR is an error naming the flag. One process at a time trains in a folder (a lock, released by the
kernel when the process dies, SIGKILL included).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import yaml

from ..config import SOLVER_DEFAULT_STEPS, TrainConfig  # noqa: E402 - re-exported

__all__ = ["TrainConfig", "TrainError", "train", "load_train_config", "Checkpoints", "TrainLog", "atomic_dir",
           "atomic_write_text", "collect_round", "train_sb3", "save_sb3", "load_sb3", "PAPER_SAC",
           "SOLVER_DEFAULT_STEPS"]

PAPER_SAC: dict[str, Any] = {
    "learning_rate": 3e-4, "gamma": 0.99, "batch_size": 256, "buffer_size": 1_000_000, "tau": 0.005,
    "target_update_interval": 1, "policy_kwargs": {"net_arch": [256, 256]},
}
"""The paper's SAC hyper-parameters (Open Door): Stable-Baselines3 ``SAC(**PAPER_SAC)`` keyword arguments
(learning rate 3e-4, discount 0.99, batch 256, buffer 1e6, tau 0.005, target update every step, two
hidden layers of 256). Episode horizon 500 is the world's."""


class TrainError(ValueError):
    """Bad input to ``d2f train`` (exit 2): the message names the problem and the fix."""


# ----------------------------------------------------------------------------- config


def load_train_config(config: Any, overrides: Sequence[str] = ()) -> tuple[Any, TrainConfig]:
    """(RunConfig, TrainConfig) from a YAML path, a recipe name or a dict, and ``--set`` overrides
    (``--set train.steps=20``): the run config's ``train:`` section is the TrainConfig."""
    from ..config import load_config
    mapping = isinstance(config, Mapping)
    cfg = load_config(None if mapping else config, list(overrides or ()), data=dict(config) if mapping else None)
    return cfg, cfg.train


# ----------------------------------------------------------------------------- atomic files


def _tmp_name(path: Path, tag: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a uniquely named temporary file and ``os.replace``."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh hidden folder beside ``final``; on a clean exit it becomes ``final`` (replacing an
    existing one, moved aside first), on an exception it is deleted. A killed process leaves ``final`` as it
    was or complete; the hidden leftovers are tidied by :meth:`Checkpoints.clean`, which also moves back
    an old ``final`` a kill caught between the two renames."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            old = _tmp_name(final, "old")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _clean(root: Path) -> None:
    if not root.is_dir():
        return
    for p in root.iterdir():
        if not p.name.startswith("."):
            continue
        if ".old-" in p.name and not (root / p.name[1:].split(".old-")[0]).exists():
            os.replace(p, root / p.name[1:].split(".old-")[0])
        elif ".tmp-" in p.name or ".old-" in p.name:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


class Checkpoints:
    """``root/step-NNNNNNNN/`` folders, each complete (written with :func:`atomic_dir`), with a
    ``state.json``; the newest ``keep`` are kept."""

    PREFIX = "step-"

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root, self.keep = Path(root), int(keep)

    def steps(self) -> list[int]:
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            if p.is_dir() and p.name.startswith(self.PREFIX) and (p / "state.json").is_file():
                try:
                    out.append(int(p.name[len(self.PREFIX):]))
                except ValueError:
                    continue
        return sorted(out)

    def path(self, step: int) -> Path:
        return self.root / f"{self.PREFIX}{int(step):08d}"

    def latest(self) -> tuple[int, Path, dict[str, Any]] | None:
        """(step, folder, state) of the newest checkpoint, or None."""
        steps = self.steps()
        if not steps:
            return None
        p = self.path(steps[-1])
        return steps[-1], p, json.loads((p / "state.json").read_text())

    def save(self, step: int, write: Callable[[Path], None], state: Mapping[str, Any]) -> Path:
        """Write checkpoint ``step``: ``write(folder)`` fills it, then ``state.json``; prune old ones."""
        final = self.path(step)
        with atomic_dir(final) as tmp:
            write(tmp)
            (tmp / "state.json").write_text(json.dumps({**dict(state), "step": int(step)}, indent=1,
                                                       default=_plain))
        for old in self.steps()[:-self.keep]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    def clean(self) -> None:
        """Tidy up after a killed process: delete the hidden folders of unfinished writes, and put back a
        checkpoint that :func:`atomic_dir` had moved aside to replace it when the kill came in between."""
        _clean(self.root)


def _plain(o: Any) -> Any:
    """JSON fallback: numpy scalars and arrays as numbers and lists, anything else as its text."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ----------------------------------------------------------------------------- logs


class TrainLog:
    """DIR/log.csv (learner, step, wall_seconds, metrics...), DIR/train.log (events) and TensorBoard.

    ``row(learner, step, metrics, wall)`` appends a row; a step at or before the learner's last logged step
    (a resumed training logging again) first drops that learner's rows from that step on. A new metric
    name adds a column (the file is rewritten). A torn last line (a kill mid-write) is dropped on open.
    """

    FIXED = ("learner", "step", "wall_seconds")

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True, resume: bool = False) -> None:
        self.dir = Path(out_dir)
        self.csv = self.dir / "log.csv"
        self.events = self.dir / "train.log"
        self.fields: list[str] = list(self.FIXED)
        self.rows: list[dict[str, str]] = []
        self._tb_wanted = bool(tensorboard)
        self._tb: Any = None
        self._tb_checked = False
        self._resume = resume
        self._purge: int | None = None
        if resume and self.csv.is_file():
            self._read()

    # -- csv
    def _read(self) -> None:
        text = self.csv.read_text()
        reader = csv.reader(io.StringIO(text))
        lines = list(reader)
        if not lines:
            return
        header = lines[0]
        if list(header[:3]) != list(self.FIXED):
            return
        self.fields = header
        torn = False
        for values in lines[1:]:
            if len(values) != len(header):
                torn = True
                continue
            self.rows.append(dict(zip(header, values)))
        if torn or not text.endswith("\n"):
            self._rewrite()

    def _rewrite(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow(r)
        atomic_write_text(self.csv, buf.getvalue())

    def rewind(self, learner: str, after_step: int) -> None:
        """Drop ``learner``'s rows with step > ``after_step`` (a resume from that checkpoint)."""
        keep = [r for r in self.rows if not (r["learner"] == learner and int(r["step"]) > after_step)]
        if len(keep) != len(self.rows):
            self.rows = keep
            self._rewrite()
        self._purge = after_step + 1 if self._purge is None else min(self._purge, after_step + 1)

    def row(self, learner: str, step: int, metrics: Mapping[str, Any], wall: float) -> None:
        step = int(step)
        last = [int(r["step"]) for r in self.rows if r["learner"] == learner]
        if last and step <= max(last):
            self.rewind(learner, step - 1)
        values = _numbers(metrics)
        rec = {"learner": learner, "step": str(step), "wall_seconds": f"{wall:.3f}",
               **{k: repr(v) for k, v in values.items()}}
        new = [k for k in values if k not in self.fields]
        self.rows.append(rec)
        if new or not self.csv.is_file():
            self.fields += new
            self._rewrite()
        else:
            with open(self.csv, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n").writerow(rec)
        self._tensorboard(learner, step, values)

    # -- events
    def event(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.events, "a") as f:
            f.write(f"{stamp} {message}\n")

    # -- tensorboard
    def _tensorboard(self, learner: str, step: int, values: Mapping[str, float]) -> None:
        if not self._tb_wanted:
            return
        if not self._tb_checked:
            self._tb_checked = True
            self._tb = _summary_writer(self.dir / "tensorboard", self._purge if self._resume else None)
            self.event("tensorboard: events in tensorboard/" if self._tb is not None else
                       "tensorboard: not installed, CSV log only (pip install tensorboard)")
        if self._tb is None:
            return
        for k, v in values.items():
            self._tb.add_scalar(f"{learner}/{k}", v, step)
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _is_number(v: Any) -> bool:
    """A metric value d2f train logs: an int, float or numpy scalar (not a bool, not a string)."""
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))


def _numbers(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The numeric entries of ``metrics`` as floats (what log.csv, TensorBoard and train.json get)."""
    return {str(k): float(v) for k, v in (metrics or {}).items() if _is_number(v)}


def _summary_writer(log_dir: Path, purge_step: int | None) -> Any:
    import importlib.util
    if importlib.util.find_spec("tensorboard") is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - no torch, or a torch/tensorboard mismatch: CSV only
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


# ----------------------------------------------------------------------------- progress


class _Bar:
    """A rich progress bar (stderr) with the latest metrics; a no-op when ``console`` is None."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._p: Any = None
        self._task: Any = None

    def start(self, label: str, total: int, done: int) -> None:
        if self.console is None:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self._p = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"), console=self.console)
        self._p.start()
        self._task = self._p.add_task(label, total=total, completed=done, metrics="")

    def update(self, done: int, metrics: Mapping[str, Any] | None = None, note: str = "") -> None:
        if self._p is None:
            return
        text = "  ".join(f"{k} {v:.4g}" for k, v in _numbers(metrics).items())
        self._p.update(self._task, completed=done, metrics=(f"{note} " if note else "") + text)

    def print(self, message: str) -> None:
        if self._p is not None:
            self._p.console.print(message, markup=False, highlight=False)
        elif self.console is not None:
            self.console.print(message, markup=False, highlight=False)

    def stop(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


# ----------------------------------------------------------------------------- the driver


@dataclass
class _Folder:
    """The training folder: its files, lock and status."""

    root: Path
    lock: Any = None
    status: dict[str, Any] = field(default_factory=dict)

    def acquire(self) -> None:
        import fcntl
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = open(self.root / ".lock", "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.lock.close()
            self.lock = None
            raise TrainError(f"--out {self.root}: another d2f train is using this folder (wait for it to end, or "
                             "choose another --out)") from None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def write_status(self, **changes: Any) -> None:
        self.status.update(changes)
        atomic_write_text(self.root / "train.json", json.dumps(self.status, indent=1, default=_plain))


def _config_hash(cfg: Any) -> str:
    data = cfg.model_dump(mode="json", exclude={"train"} if "train" in type(cfg).model_fields else None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


LEARNS = {"dynamics": "trainable", "solver": "trains"}
"""The kinds ``d2f train`` trains, in order, and the capability that makes a plugin of that kind learn."""


def _learners(cfg: Any, reg: Any) -> list[str]:
    """The kinds that learn in ``cfg`` (dynamics with ``trainable``, solver with ``trains``), or TrainError."""
    out, why = [], []
    for kind, cap in LEARNS.items():
        c = cfg.component(kind)
        if c is None:
            why.append(f"no {kind} is configured")
            continue
        m = reg.get(kind, c.plugin, where=f"{kind}.plugin").manifest
        if cap in m.capabilities:
            out.append(kind)
        else:
            why.append(f"{kind} {c.plugin!r} does not declare capability {cap!r}")
    if not out:
        users = [f"{e.manifest.kind} {e.manifest.name}" for e in reg.entries()
                 if LEARNS.get(e.manifest.kind) in e.manifest.capabilities]
        raise TrainError(f"nothing in config {getattr(cfg, 'name', '')!r} learns: {'; '.join(why)}. Configure a "
                         "dynamics plugin with capability 'trainable' or a solver with capability 'trains' "
                         f"(installed: {', '.join(users) or 'none'}; `d2f plugins --json` lists capabilities)")
    return out


def train(cfg: Any, out_dir: str | Path, *, train_config: TrainConfig | None = None, resume: bool = False,
          seed: int | None = None, registry: Any = None, console: Any = None) -> dict[str, Any]:
    """Train what ``cfg`` (a RunConfig) learns into ``out_dir`` (module docstring); returns the final
    ``train.json`` content. ``console``: a rich Console for the progress bar (None: no bar).

    Raises :class:`TrainError` (and config/plugin errors) for bad input; anything a learner raises is
    re-raised after ``train.json`` records the failure.
    """
    from ..registry import get_registry
    from . import make_env

    tc = train_config or TrainConfig()
    reg = (registry or get_registry()).discover()
    out = Path(out_dir)
    seed = int(seed if seed is not None else tc.seed if tc.seed is not None else cfg.seed)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out}: is a file; choose a folder")
    busy = out.is_dir() and any(p.name != ".lock" for p in out.iterdir())
    if busy and not resume:
        raise TrainError(f"--out {out} is not empty: pass --resume to continue the training in it, or choose "
                         "another --out")
    if busy and not (out / "train.json").is_file():
        raise TrainError(f"--out {out} is not a d2f train folder (no train.json); choose another --out")
    learners = _learners(cfg, reg)
    cfg = _training_config(cfg, tc, learners, reg)
    if "dynamics" in learners and cfg.estimator is None:
        raise TrainError(f"estimator: collecting transitions for dynamics {cfg.dynamics.plugin!r} needs the "
                         "particles' positions: add `estimator: {plugin: sim-particles}` (the simulator's object "
                         "pose) or another estimator to the config")
    folder = _Folder(out)
    folder.acquire()
    try:
        chash = _config_hash(cfg)
        previous = json.loads((out / "train.json").read_text()) if busy else None
        if previous is not None:
            if previous.get("config_hash") != chash:
                raise TrainError(f"--resume: {out} was trained with another run config (see {out / 'config.yaml'}); "
                                 "resume with the same config and --set options, or choose another --out")
            if int(previous.get("seed", seed)) != seed:
                raise TrainError(f"--resume: {out} was trained with seed {previous.get('seed')}, not {seed}; pass "
                                 f"--seed {previous.get('seed')} or choose another --out")
        folder.status = dict(previous or {})
        log = TrainLog(out, tensorboard=tc.tensorboard, resume=previous is not None)
        folder.write_status(status="running", config=getattr(cfg, "name", ""), config_hash=chash, seed=seed,
                            learners={k: (folder.status.get("learners") or {}).get(k, {}) for k in learners},
                            pid=os.getpid())
        atomic_write_text(out / "config.yaml", cfg.to_yaml())
        atomic_write_text(out / "train.yaml", yaml.safe_dump(tc.model_dump(), sort_keys=False))
        log.event(("resume" if previous is not None else "start") + f": learners {', '.join(learners)}, seed {seed}, "
                  f"pid {os.getpid()}")
        bar = _Bar(console)
        try:
            env = make_env(cfg, seed=seed, workdir=out / "perception", registry=reg)
        except Exception:
            folder.write_status(status="failed: building the environment")
            raise
        try:
            for kind in learners:
                component = _build(reg, cfg, kind, env, seed, out)
                runner = _train_dynamics if kind == "dynamics" else _train_solver
                try:
                    info = runner(component, env, out, tc, seed, log, bar, resume=previous is not None)
                except BaseException as e:
                    bar.stop()
                    log.event(f"{kind}: failed: {type(e).__name__}: {e}")
                    folder.write_status(status=f"failed: {kind}: {type(e).__name__}: {str(e)[:300]}")
                    raise
                folder.status["learners"][kind] = info
                folder.write_status()
            folder.write_status(status="done")
            log.event("done")
        finally:
            bar.stop()
            log.close()
            env.close()
        return dict(folder.status)
    finally:
        folder.release()


def _training_config(cfg: Any, tc: TrainConfig, learners: list[str], reg: Any) -> Any:
    """The run config the learners train in: ``train.estimator`` replaces the run's estimator, and a dynamics
    model starts from scratch (its ``checkpoint`` option set to None, whatever its default or the config's
    value: a shipped model is not warm-started by accident) unless ``train.from_checkpoint``."""
    update: dict[str, Any] = {}
    if "dynamics" in learners and tc.estimator is not None:
        update["estimator"] = tc.estimator
    if "dynamics" in learners and not tc.from_checkpoint:
        options_cls = reg.get("dynamics", cfg.dynamics.plugin, where="dynamics.plugin").manifest.options_model
        fields = getattr(options_cls, "model_fields", {}) or {}
        if "checkpoint" in fields or "checkpoint" in (cfg.dynamics.options or {}):
            opts = {**(cfg.dynamics.options or {}), "checkpoint": None}
            update["dynamics"] = cfg.dynamics.model_copy(update={"options": opts})
    return cfg.model_copy(update=update) if update else cfg


def _build(reg: Any, cfg: Any, kind: str, env: Any, seed: int, out: Path) -> Any:
    """Build the learner through the registry; its factory reaches the env's world, reward and estimator."""
    from ..registry import BuildContext
    parts = {"world": env.world, "reward": env.reward_fn, "estimator": env.estimator,
             "embodiment": getattr(env.world, "embodiment", None)}
    c = cfg.component(kind)
    ctx = BuildContext(seed=seed, workdir=out, getter=parts.get, extras={"flow": env.flow})
    return reg.create(kind, c.plugin, c.options, ctx=ctx, where=kind)


# ----------------------------------------------------------------------------- dynamics


def collect_round(env: Any, dynamics: Any, n: int, seed: int, round_index: int) -> dict[str, np.ndarray]:
    """``n`` transitions (points, actions, next_points) from ``env`` for round ``round_index`` (module
    docstring: the data-collection policy). Deterministic in (seed, round_index)."""
    rng = np.random.default_rng([int(seed), int(round_index)])
    if env.estimator is None:
        raise TrainError("estimator: collecting transitions needs the particles' positions; build the env with an "
                         "estimator")
    world_dim = int(env.action_space.shape[0])
    dim = int(dynamics.action_dim)
    sampler = "sample_actions" in getattr(dynamics, "capabilities", frozenset())
    pushes = "pushes" in getattr(env.world, "capabilities", frozenset())
    if pushes and dim == 4 and sampler:
        return _collect_pushes(env, dynamics, int(n), rng)
    if dim != world_dim:
        raise TrainError(f"dynamics.plugin: {dynamics.name!r} acts with {dim} numbers "
                         f"({', '.join(dynamics.action_names)}) but the world's action vector has {world_dim}; "
                         "d2f train collects one world step per transition, so a trainable model's action must "
                         "be the world's action")
    low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)

    def reset() -> None:
        env.reset(seed=int(rng.integers(0, 2 ** 31 - 1)))

    reset()
    pts, acts, nxt = [], [], []
    for _ in range(int(n)):
        p = np.array(env.particles, dtype=np.float32, copy=True)
        if sampler:
            a = np.asarray(dynamics.sample_actions(p, 1, rng), dtype=np.float64).reshape(-1)
        else:
            a = rng.uniform(low, high)
        if a.shape != (world_dim,) or not np.all(np.isfinite(a)):
            raise ValueError(f"dynamics: sample_actions gave an action of shape {a.shape} (finite values "
                             f"expected, {world_dim} of them)")
        _, _, terminated, truncated, _ = env.step(np.clip(a, low, high))
        pts.append(p)
        acts.append(a.astype(np.float32))
        nxt.append(np.array(env.particles, dtype=np.float32, copy=True))
        if terminated or truncated:
            reset()
    return {"points": np.stack(pts), "actions": np.stack(acts), "next_points": np.stack(nxt)}


def _collect_pushes(env: Any, dynamics: Any, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` push transitions: for a world with capability ``pushes`` and a push model (action_dim 4,
    ``sample_actions``), one transition is one whole push (``FlowEnv.push``) of a push drawn by
    ``dynamics.sample_actions(P, 1, rng)`` from the current particles: the paper's "random-push
    transitions". An episode that ends, or particles no longer visible, start a new episode."""
    def reset() -> None:
        env.reset(seed=int(rng.integers(0, 2 ** 31 - 1)))

    reset()
    pts, acts, nxt = [], [], []
    while len(acts) < n:
        p = np.array(env.particles, dtype=np.float32, copy=True)
        vis = np.asarray(env.visible, dtype=bool) if env.visible is not None else np.ones(len(p), bool)
        if not vis.any():
            reset()
            continue
        a = np.asarray(dynamics.sample_actions(p[vis], 1, rng), dtype=np.float64).reshape(-1)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise ValueError(f"dynamics: sample_actions gave a push of shape {a.shape}; expected 4 finite numbers")
        _, _, terminated, truncated, _ = env.push(a)
        pts.append(p)
        acts.append(a.astype(np.float32))
        nxt.append(np.array(env.particles, dtype=np.float32, copy=True))
        if terminated or truncated:
            reset()
    return {"points": np.stack(pts), "actions": np.stack(acts), "next_points": np.stack(nxt)}


def _load_chunks(data_dir: Path, count: int) -> list[dict[str, np.ndarray]]:
    chunks = []
    for i in range(count):
        path = data_dir / f"chunk-{i:05d}.npz"
        if not path.is_file():
            raise TrainError(f"--resume: {path} is missing (the checkpoint counts {count} chunks); the folder was "
                             "changed by hand: start again with another --out")
        with np.load(path) as z:
            chunks.append({k: z[k] for k in ("points", "actions", "next_points")})
    return chunks


def _train_dynamics(dynamics: Any, env: Any, out: Path, tc: TrainConfig, seed: int, log: TrainLog, bar: _Bar,
                    *, resume: bool) -> dict[str, Any]:
    root = out / "dynamics"
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ckpts = Checkpoints(root / "checkpoints", keep=tc.keep)
    ckpts.clean()
    _clean(root)  # an interrupted replacement of the final model
    total = tc.dynamics_steps()
    every = tc.checkpoint_every or 1
    rounds_to_collect = math.ceil(tc.transitions / tc.chunk)
    step, wall0, chunks, metrics = 0, 0.0, [], {}
    latest = ckpts.latest() if resume else None
    if latest is not None:
        step, path, state = latest
        dynamics.load(str(path / "model"))
        wall0 = float(state.get("wall_seconds", 0.0))
        chunks = _load_chunks(data_dir, int(state["chunks"]))
        metrics = dict(state.get("metrics") or {})
        log.rewind("dynamics", step)
        log.event(f"dynamics: resumed from checkpoint step {step} ({sum(len(c['actions']) for c in chunks)} "
                  "transitions)")
    elif resume:
        log.rewind("dynamics", 0)
        log.event("dynamics: no checkpoint to resume from; starting at step 0")
    t0 = time.perf_counter()
    bar.start(f"train dynamics {getattr(dynamics, 'name', '')}", total, step)
    bar.update(step, metrics)
    while step < total:
        r = step
        if len(chunks) < rounds_to_collect and r == len(chunks):
            n = min(tc.chunk, tc.transitions - sum(len(c["actions"]) for c in chunks))
            bar.update(step, metrics, note=f"collecting {n}")
            chunk = collect_round(env, dynamics, n, seed, r)
            _atomic_npz(data_dir / f"chunk-{r:05d}.npz", chunk)
            chunks.append(chunk)
        data = {k: np.concatenate([c[k] for c in chunks]) for k in ("points", "actions", "next_points")}

        def fit_progress(done: int, of: int | None = None, m: Mapping[str, Any] | None = None) -> None:
            bar.update(step, m, note=f"fit {done}/{of}" if of else f"fit {done}")

        metrics = dict(dynamics.fit(data, progress=fit_progress) or {})
        step += 1
        wall = wall0 + time.perf_counter() - t0
        log.row("dynamics", step, {"transitions": len(data["actions"]), **metrics}, wall)
        bar.update(step, metrics)
        if step % every == 0 or step == total:
            ckpts.save(step, lambda d: dynamics.save(str(d / "model")),
                       {"chunks": len(chunks), "wall_seconds": wall, "seed": seed,
                        "metrics": _numbers(metrics)})
            log.event(f"dynamics: checkpoint step {step}/{total}")
    with atomic_dir(root / "model") as d:
        dynamics.save(str(d))
    collected = sum(len(c["actions"]) for c in chunks)
    bar.stop()
    bar.print(f"dynamics {getattr(dynamics, 'name', '')}: {step} rounds, {collected} transitions; "
              f"model: {root / 'model'}")
    return {"step": step, "total": total, "transitions": collected, "model": str(root / "model"),
            "metrics": _numbers(metrics)}


# ----------------------------------------------------------------------------- solvers


def _train_solver(solver: Any, env: Any, out: Path, tc: TrainConfig, seed: int, log: TrainLog, bar: _Bar,
                  *, resume: bool) -> dict[str, Any]:
    total = tc.solver_steps()
    every = tc.checkpoint_every or max(1, total // 10)
    root = out / "solver"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wall0 = 0.0
    if resume:
        rows = [r for r in log.rows if r["learner"] == "solver"]
        wall0 = float(rows[-1]["wall_seconds"]) if rows else 0.0
    last: dict[str, Any] = {}
    bar.start(f"train solver {getattr(solver, 'name', '')}", total, 0)

    def progress(step: int, budget: int | None = None, metrics: Mapping[str, Any] | None = None) -> None:
        bar.update(int(step), metrics)

    def log_row(step: int, metrics: Mapping[str, Any]) -> None:
        last.clear()
        last.update(metrics)
        log.row("solver", step, metrics, wall0 + time.perf_counter() - t0)

    final = solver.train(env, str(root), resume=resume, budget=total, checkpoint_every=every, seed=seed,
                         progress=progress, log=log_row)
    metrics = _numbers(final or last)
    bar.stop()
    bar.print(f"solver {getattr(solver, 'name', '')}: {total} environment steps; folder: {root}")
    log.event(f"solver: done, {total} steps")
    return {"step": total, "total": total, "folder": str(root), "metrics": metrics}


# ----------------------------------------------------------------------------- Stable-Baselines3


def save_sb3(model: Any, directory: str | Path) -> None:
    """Write an SB3 off-policy model into ``directory``: ``model.zip`` (weights, optimisers, step counter),
    ``replay_buffer.pkl`` (when it has one) and ``rng.pt`` (torch and numpy global RNG states)."""
    import pickle

    import torch
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model.save(d / "model.zip")
    if getattr(model, "replay_buffer", None) is not None:
        model.save_replay_buffer(d / "replay_buffer.pkl")
    with open(d / "rng.pkl", "wb") as f:
        pickle.dump({"torch": torch.get_rng_state(), "numpy": np.random.get_state()}, f)


def load_sb3(algorithm: Any, directory: str | Path, env: Any = None, **kwargs: Any) -> Any:
    """The model :func:`save_sb3` wrote, bound to ``env``, with its replay buffer and RNG states."""
    import pickle

    import torch
    d = Path(directory)
    if not (d / "model.zip").is_file():
        raise FileNotFoundError(f"directory: {d / 'model.zip'} not found; load_sb3 reads what save_sb3 wrote")
    model = algorithm.load(d / "model.zip", env=env, device="cpu", **kwargs)
    if (d / "replay_buffer.pkl").is_file() and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(d / "replay_buffer.pkl")
    if (d / "rng.pkl").is_file():
        with open(d / "rng.pkl", "rb") as f:
            rng = pickle.load(f)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
    return model


def train_sb3(algorithm: Any, env: Any, out_dir: str | Path, *, resume: bool, budget: int, checkpoint_every: int,
              seed: int, progress: Callable[..., None] | None = None, log: Callable[..., None] | None = None,
              log_every: int | None = None, keep: int = 2, policy: str = "MlpPolicy", threads: int | None = 1,
              **hyper: Any) -> tuple[Any, dict[str, float]]:
    """:class:`TrainingSolver`'s ``train`` for a Stable-Baselines3 algorithm (e.g. ``SAC`` with
    ``**PAPER_SAC``): returns (model, final metrics).

    Fresh: ``algorithm(policy, env, seed=seed, **hyper)``. With ``resume`` and a checkpoint in
    ``out_dir/checkpoints``: the model, replay buffer, step counter and RNG states of the newest one (the
    episode in progress at the checkpoint starts over). Learns until ``budget`` environment steps in all.
    Checkpoints (``out_dir/checkpoints/step-N``, :func:`save_sb3`) and log rows (``log(step, metrics)``: the
    mean reward since the last row, SB3's latest training values such as actor/critic loss and entropy
    coefficient, the replay buffer's size) come at the first rollout boundary after every ``checkpoint_every``
    / ``log_every`` steps (every step with SAC's default ``train_freq``) and at the end, where the buffer
    holds every step taken and its gradient steps are done; ``progress(step, budget, metrics)`` every step. The trained model is also saved to ``out_dir/model`` (:func:`save_sb3`). ``threads``: torch
    CPU threads (1: small MLPs train fastest on one, and share the machine; None: torch's default).
    """
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out_dir)
    ckpts = Checkpoints(out / "checkpoints", keep=keep)
    ckpts.clean()
    _clean(out)
    latest = ckpts.latest() if resume else None
    if latest is not None:
        model = load_sb3(algorithm, latest[1], env)
    else:
        model = algorithm(policy, env, seed=seed, **{"device": "cpu", "verbose": 0, **hyper})
    log_every = int(log_every or max(1, budget // 100))
    every = int(checkpoint_every)
    metrics: dict[str, float] = {}

    class _Hooks(BaseCallback):
        """Progress every step; log rows and checkpoints where the state is consistent: at the start of a
        rollout (the last step is in the replay buffer and its gradient steps are done) and at the end."""

        def __init__(self, start: int) -> None:
            super().__init__()
            self.window: list[float] = []
            self.logged = self.saved = start

        def _on_step(self) -> bool:
            self.window.extend(float(r) for r in np.asarray(self.locals.get("rewards", [])).ravel())
            if progress is not None:
                progress(int(self.num_timesteps), budget, metrics)
            return True

        def _on_rollout_start(self) -> None:
            self.mark()

        def _on_training_end(self) -> None:
            self.mark(final=True)

        def mark(self, final: bool = False) -> None:
            n = int(self.num_timesteps)
            if n > self.logged and (n // log_every > self.logged // log_every or final):
                self.logged = n
                metrics.clear()
                if self.window:
                    metrics["reward"] = float(np.mean(self.window))
                self.window = []
                for k, v in self.model.logger.name_to_value.items():
                    if k.startswith("train/") and _is_number(v):
                        metrics[k.split("/", 1)[1]] = float(v)
                buffer = self.model.replay_buffer
                metrics["buffer"] = float(buffer.size()) if buffer is not None else 0.0
                if log is not None:
                    log(n, dict(metrics))
            if n > self.saved and (n // every > self.saved // every or final):
                self.saved = n
                ckpts.save(n, lambda d: save_sb3(self.model, d), {"seed": seed, "metrics": dict(metrics)})

    remaining = int(budget) - int(model.num_timesteps)
    if remaining > 0:
        model.learn(total_timesteps=remaining, reset_num_timesteps=False, callback=_Hooks(int(model.num_timesteps)),
                    progress_bar=False)
    with atomic_dir(out / "model") as d:
        save_sb3(model, d)
    return model, dict(metrics)
