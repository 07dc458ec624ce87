"""Where batches of independent jobs (episodes of ``d2f eval``, scenes of a batch flow extraction) run.

One small interface, two executors:

* :class:`SerialExecutor` (the default): the jobs run one after the other in this process.
* :class:`RayExecutor` (``--executor ray``, extra ``ray``): the jobs run on a Ray cluster — a local
  one started on this machine by default, an existing one with ``--address`` (``auto``, or
  ``ray://HOST:10001`` for Ray Client). Ray is imported only when this executor starts, never at
  ``import d2f_core``.

``executor.map(fn, items)`` calls ``fn(item)`` for every item and yields ``(index, value, error)`` as the
jobs *finish* (in any order), so a caller reports progress as they come and orders its results
itself. A job that raises (or whose Ray worker dies) yields ``error`` (one line) instead of a value and
never stops the other jobs. ``fn`` must be a module-level function and ``items`` plain picklable data
(the Ray workers import the same installed ``d2f_core`` / ``d2f_plugins``).

**Components that hold a model** (a manifest declaring the capability ``needs_weights``: Wan, SAM 2,
CoTracker, SpatialTracker, HaMeR, AnyGrasp) are built once per worker process and reused by every job
that worker runs: :func:`model_cache_registry` wraps the run's registry so that ``create`` of such a
perception component (kinds in :data:`MODEL_KINDS`) returns the instance built for the same
(kind, plugin, options) earlier in this process. When the config has one (``model_kinds(cfg)``), the
Ray executor runs the jobs on a fixed pool of long-lived **actors** (``workers`` of them, each with
``num_gpus`` GPUs when asked), so the weights load ``workers`` times, not once per job; otherwise each
job is a plain Ray task (``num_cpus`` CPUs each). ``model_actors=True/False`` forces either way.
Acting components (world, embodiment, solver, ...) are always built fresh per job: they hold an
episode's state.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

__all__ = ["ExecutorError", "Executor", "SerialExecutor", "RayExecutor", "make_executor", "model_cache_registry",
           "model_kinds", "MODEL_KINDS", "EXECUTORS"]

EXECUTORS = ("serial", "ray")
MODEL_KINDS = ("video", "depth", "segmenter", "tracker", "hand", "grasper")
"""Perception kinds whose ``needs_weights`` components are cached per worker (stateless between calls)."""

# environment variables a job needs on a Ray worker (a remote node does not inherit ours)
_ENV_PREFIXES = ("D2F_", "MUJOCO_", "PYOPENGL_", "HF_", "TORCH_", "SPATRACKERV2_", "HAMER_", "ANYGRASP_",
                 "GEMINI_", "KLING_", "CUDA_VISIBLE")

Outcome = tuple[int, Any, "str | None"]


class ExecutorError(RuntimeError):
    """The executor cannot start (Ray missing, no cluster at --address); the message says the fix."""


class Executor(Protocol):
    """Runs ``fn(item)`` for each item; yields ``(index, value, error)`` as jobs finish."""

    name: str

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, builds_model: bool = False) -> Iterator[Outcome]:
        """``builds_model``: the jobs build a model component (the Ray executor then uses its actor pool)."""

    def close(self) -> None: ...


def _error_line(e: BaseException) -> str:
    text = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {(text[0] if text else '')[:300]}"


class SerialExecutor:
    """One job after the other, in this process."""

    name = "serial"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, builds_model: bool = False) -> Iterator[Outcome]:
        for i, item in enumerate(items):
            try:
                value = fn(item)
            except Exception as e:  # noqa: BLE001 - one bad job never kills the batch
                yield i, None, _error_line(e)
            else:
                yield i, value, None

    def close(self) -> None:
        pass


@dataclass
class RayExecutor:
    """Jobs on a Ray cluster (module docstring).

    address: None starts a local cluster (``num_cpus`` limits it, default all cores); ``"auto"`` or
    ``"ray://host:10001"`` joins an existing one. workers: size of the model actor pool (default: the
    cluster's CPUs / num_cpus, or its GPUs / num_gpus when num_gpus > 0). num_cpus / num_gpus: resources
    per job (per actor in the pool). model_actors: None = actors only when the job builds a model.
    """

    address: str | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    workers: int | None = None
    model_actors: bool | None = None
    local_cpus: int | None = None
    name: str = "ray"

    def __post_init__(self) -> None:
        self._started = False

    def start(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ExecutorError("--executor ray needs Ray: pip install 'dream2flow[ray]' (or use --executor "
                                "serial)") from None
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False,
                                      "log_to_driver": True, "configure_logging": False}
            if env:
                kwargs["runtime_env"] = {"env_vars": env}
            try:
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:
                    ray.init(num_cpus=self.local_cpus, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at --address {self.address}" if self.address else "a local Ray cluster"
                raise ExecutorError(f"cannot start {where}: {_error_line(e)} (check the address, e.g. "
                                    "`ray status` on the head node)") from None
            self._started = True
        return ray

    def _pool_size(self, ray: Any, n_items: int) -> int:
        if self.workers:
            return max(1, min(int(self.workers), n_items))
        res = ray.cluster_resources()
        if self.num_gpus > 0:
            n = int(res.get("GPU", 0) // self.num_gpus)
        else:
            n = int(res.get("CPU", 1) // max(self.num_cpus, 1e-3))
        return max(1, min(n, n_items))

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, builds_model: bool = False) -> Iterator[Outcome]:
        ray = self.start()
        items = list(items)
        if not items:
            return
        res = ray.cluster_resources()
        for key, need in (("GPU", self.num_gpus), ("CPU", self.num_cpus)):
            if need > res.get(key, 0):  # the jobs would wait forever
                raise ExecutorError(f"each job asks for {need:g} {key}(s) but the Ray cluster has "
                                    f"{res.get(key, 0):g}; lower --gpus, or add nodes with {key}s")
        use_actors = builds_model if self.model_actors is None else self.model_actors
        if use_actors:
            yield from self._map_actors(ray, fn, items)
            return
        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(_call)
        pending = {task.remote(fn, item): i for i, item in enumerate(items)}
        yield from _drain(ray, pending)

    def _map_actors(self, ray: Any, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Outcome]:
        from ray.exceptions import RayActorError

        actor_cls = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0,
                               max_task_retries=0)(_ModelWorker)
        actors = [actor_cls.remote() for _ in range(self._pool_size(ray, len(items)))]
        todo = list(enumerate(items))[::-1]
        pending: dict[Any, tuple[int, Any]] = {}

        def submit(actor: Any) -> None:
            if todo:
                i, item = todo.pop()
                pending[actor.run.remote(fn, item)] = (i, actor)

        for a in actors:
            submit(a)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                i, actor = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except RayActorError as e:  # its process died (e.g. a segfault): a fresh actor takes its place
                    actors.remove(actor)
                    ray.kill(actor)
                    actor = actor_cls.remote()
                    actors.append(actor)
                    yield i, None, _error_line(e)
                except Exception as e:  # noqa: BLE001 - the job raised
                    yield i, None, _error_line(getattr(e, "cause", None) or e)
                else:
                    yield i, value, None
                submit(actor)
        finally:
            for a in actors:
                ray.kill(a)

    def close(self) -> None:
        if self._started:
            import ray
            ray.shutdown()
            self._started = False


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class _ModelWorker:
    """A Ray actor: runs jobs one at a time; the models built by its jobs stay in its process."""

    def run(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return fn(item)


def _drain(ray: Any, pending: dict[Any, int]) -> Iterator[Outcome]:
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        i = pending.pop(ref)
        try:
            yield i, ray.get(ref), None
        except Exception as e:  # noqa: BLE001 - the job raised, or its worker died
            yield i, None, _error_line(getattr(e, "cause", None) or e)


def make_executor(name: str = "serial", *, address: str | None = None, **options: Any) -> Executor:
    """``serial`` or ``ray`` (options: see :class:`RayExecutor`); ValueError naming --executor otherwise."""
    if name == "serial":
        if address:
            raise ValueError("--address is for --executor ray; add --executor ray or drop --address")
        return SerialExecutor()
    if name == "ray":
        return RayExecutor(address=address or None, **options)
    raise ValueError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")


# ---------------------------------------------------------------------------------------- model cache
_MODELS: dict[str, Any] = {}
"""(kind, plugin, options) -> component, for this process (a Ray worker's lifetime)."""


def model_kinds(cfg: Any, registry: Any) -> list[str]:
    """The perception kinds of ``cfg`` whose configured plugin declares ``needs_weights``."""
    out = []
    for kind in MODEL_KINDS:
        c = cfg.component(kind)
        if c is None:
            continue
        try:
            caps = registry.get(kind, c.plugin).manifest.capabilities
        except Exception:  # noqa: BLE001 - an unknown plugin fails later, in the run, with its message
            continue
        if "needs_weights" in caps:
            out.append(kind)
    return out


class _CachingRegistry:
    """A registry whose ``create`` reuses this process's model components (module docstring)."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def create(self, kind: str, name: str, options: Any = None, **kw: Any) -> Any:
        if kind not in MODEL_KINDS or "needs_weights" not in self._registry.get(kind, name).manifest.capabilities:
            return self._registry.create(kind, name, options, **kw)
        key = json.dumps([kind, name, dict(options or {})], sort_keys=True, default=str)
        if key not in _MODELS:
            _MODELS[key] = self._registry.create(kind, name, options, **kw)
        return _MODELS[key]


def model_cache_registry(registry: Any) -> Any:
    """``registry`` with model components cached per process (module docstring)."""
    return registry if isinstance(registry, _CachingRegistry) else _CachingRegistry(registry)
