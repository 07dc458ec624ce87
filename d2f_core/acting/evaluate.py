"""``d2f eval``: run a config's episodes over seeds and write ``DIR/summary.json``.

Each seed is one run of the whole pipeline into ``DIR/seed<S>/`` (perception stages are cached in
that folder, so re-evaluating with another solver or after a crash recomputes only what changed),
then one episode (the pipeline's ``execute`` stage: ``rollout(env, agent, seed)``). An episode
that fails in any stage is recorded as a failure with its reason; it never stops the batch.

``summary.json`` (rewritten atomically after every episode, so a killed evaluation keeps what it
had done):

```
{"config": NAME, "overrides": [...], "seeds": [...], "episodes": 10, "successes": 8,
 "success_rate": 0.8, "seconds": 123.4,
 "results": [{"seed": 0, "success": true, "steps": 129, "return": 0.0, "reason": "", "ended": ...,
              "seconds": 24.1, "run": "seed0"}, ...]}
```

``resume=True`` reuses an episode whose folder already holds a finished ``result.json`` made with
the same resolved config; any other episode runs again.

``executor="ray"`` runs the episodes as Ray tasks (or on a pool of model actors when the config has a
component that holds a model; :mod:`d2f_core.acting.executors`, docs/scale.md); the summary is the
same as the serial one (results in seed order) except for the timings.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["parse_seeds", "evaluate", "episode_record", "run_episode"]

_MAX_SEEDS = 100_000


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"3"``, ``"0,2,5-7"`` -> sorted unique non-negative seeds (ValueError naming --seeds)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("--seeds: expected a range such as 0-9, a list such as 0,3,5 or one seed")
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise ValueError(f"--seeds: {part[:40]!r} is not a seed or a range A-B of non-negative integers "
                             "(e.g. --seeds 0-9)")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise ValueError(f"--seeds: range {part!r} ends before it starts; write it as {b}-{a}")
        if len(seeds) + (b - a + 1) > _MAX_SEEDS:
            raise ValueError(f"--seeds: more than {_MAX_SEEDS} seeds; split the evaluation")
        seeds.update(range(a, b + 1))
    return sorted(seeds)


def episode_record(seed: int, result: dict[str, Any], run_dir: Path, seconds: float) -> dict[str, Any]:
    """One summary row from a run's result.json; a failure always carries a non-empty reason."""
    success = result.get("success") is True
    ep = result.get("episode") or {}
    reason = "" if success else (result.get("message") or
                                 (f"stopped at stage {result['stopped_at']!r}" if result.get("stopped_at")
                                  else "the episode did not succeed (no reason recorded)"))
    return {"seed": int(seed), "success": success, "steps": int(result.get("steps") or 0),
            "return": ep.get("return"), "reason": reason, "ended": ep.get("ended") or
            ("error" if result.get("stopped_at") else None), "seconds": round(seconds, 3), "run": run_dir.name}


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def evaluate(config: Any, seeds: Sequence[int], out_dir: str | Path, *, overrides: Sequence[str] = (),
             registry: Any = None, resume: bool = False,
             progress: Callable[[int, int, dict[str, Any]], None] | None = None,
             observers: Sequence[Any] = (), executor: Any = "serial", address: str | None = None,
             executor_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one episode per seed (module docstring); returns the summary (also in ``out_dir/summary.json``).

    ``executor``: ``"serial"`` (default), ``"ray"`` (``address`` of an existing cluster, else a local one;
    ``executor_options`` go to :class:`d2f_core.acting.executors.RayExecutor`) or an executor object.
    The summary is the same whichever runs the episodes (results in seed order; only timings differ);
    ``progress`` is called as episodes finish. With Ray, ``observers`` are pickled to the workers and
    their hooks run there.
    """
    from ..config import load_config
    from ..registry import get_registry
    from .executors import make_executor

    cfg = load_config(config, list(overrides))
    reg = registry or get_registry().discover()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} is a file; give a folder for the evaluation")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("--seeds: no seed to evaluate")
    ex = make_executor(executor, address=address, **(executor_options or {})) if isinstance(executor, str) \
        else executor
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"config": cfg.name, "source": str(config), "overrides": list(overrides),
                               "seeds": seeds, "episodes": 0, "successes": 0, "success_rate": None,
                               "seconds": 0.0, "results": []}
    t_all = time.perf_counter()
    records: dict[int, dict[str, Any]] = {}

    def finished(i: int, record: dict[str, Any]) -> None:
        records[i] = record
        summary["results"] = [records[k] for k in sorted(records)]
        summary["episodes"] = len(records)
        summary["successes"] = sum(r["success"] for r in records.values())
        summary["success_rate"] = round(summary["successes"] / summary["episodes"], 4)
        summary["seconds"] = round(time.perf_counter() - t_all, 3)
        _write_json(out / "summary.json", summary)
        if progress is not None:
            progress(len(records), len(seeds), record)

    todo = []
    for i, seed in enumerate(seeds):
        record = _reuse(out / f"seed{seed}", cfg.to_yaml(), seed) if resume else None
        if record is not None:
            finished(i, record)
        else:
            todo.append(i)
    try:
        _run_all(ex, cfg, seeds, todo, out, reg, observers, finished)
    finally:
        if isinstance(executor, str):  # ours: a local Ray cluster stops with the evaluation
            ex.close()
    return summary


def _run_all(ex: Any, cfg: Any, seeds: list[int], todo: list[int], out: Path, reg: Any, observers: Sequence[Any],
             finished: Callable[[int, dict[str, Any]], None]) -> None:
    from .executors import model_kinds

    if ex.name == "serial":
        for plugin in observers:
            reg.pm.register(plugin)
        try:
            jobs = [(cfg, seeds[i], out / f"seed{seeds[i]}", reg) for i in todo]
            for j, record, error in ex.map(run_episode, jobs):
                finished(todo[j], record if error is None else
                         _crash_record(seeds[todo[j]], out / f"seed{seeds[todo[j]]}", error))
        finally:
            for plugin in observers:
                reg.pm.unregister(plugin)
    else:
        cache = bool(model_kinds(cfg, reg))
        jobs = [(cfg, seeds[i], (out / f"seed{seeds[i]}").resolve(), None, list(observers), cache) for i in todo]
        for j, record, error in ex.map(run_episode, jobs, builds_model=cache):
            finished(todo[j], record if error is None else
                     _crash_record(seeds[todo[j]], out / f"seed{seeds[todo[j]]}", error))


def run_episode(job: tuple) -> dict[str, Any]:
    """One seed's episode: ``job = (cfg, seed, run_dir, registry[, observers, cache_models])`` -> its record.

    A failure in any stage is a failed record with its reason, never an exception. ``registry`` None:
    this process's discovered registry (a Ray worker's), with ``observers`` registered on it and model
    components cached per process when ``cache_models``.
    """
    from ..pipeline import Run, StageError
    from ..registry import get_registry

    cfg, seed, run_dir, reg = job[:4]
    observers, cache = (job[4], job[5]) if len(job) > 4 else ((), False)
    run_dir = Path(run_dir)
    if reg is None:
        reg = get_registry().discover()
        if cache:
            from .executors import model_cache_registry
            reg = model_cache_registry(reg)
    for plugin in observers:
        reg.pm.register(plugin)
    t0 = time.perf_counter()
    try:
        run = Run(config=cfg, out_dir=run_dir, registry=reg, seed=seed)
        try:
            result = run.execute()
        except StageError:
            result = run.result
        except Exception as e:  # noqa: BLE001 - one bad episode never kills the batch
            result = {"success": False, "message": f"{type(e).__name__}: {str(e)[:300]}"}
    except Exception as e:  # noqa: BLE001 - e.g. a scene that does not load
        result = {"success": False, "message": f"{type(e).__name__}: {str(e)[:300]}"}
    finally:
        for plugin in observers:
            reg.pm.unregister(plugin)
    return episode_record(seed, result, run_dir, time.perf_counter() - t0)


def _crash_record(seed: int, run_dir: Path, error: str) -> dict[str, Any]:
    """The record of an episode whose job itself died (its worker crashed, or it raised)."""
    return episode_record(seed, {"success": False, "message": f"episode job failed: {error}"}, run_dir, 0.0)


def _reuse(run_dir: Path, config_yaml: str, seed: int) -> dict[str, Any] | None:
    """The record of a finished episode in ``run_dir`` made with the same config, else None."""
    try:
        result = json.loads((run_dir / "result.json").read_text())
        same = (run_dir / "config.yaml").read_text() == config_yaml and result.get("seed") == seed
    except (OSError, ValueError):
        return None
    if not same or result.get("success") is None:
        return None
    return episode_record(seed, result, run_dir, 0.0)
