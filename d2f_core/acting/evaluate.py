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
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["parse_seeds", "evaluate", "episode_record"]

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
             observers: Sequence[Any] = ()) -> dict[str, Any]:
    """Run one episode per seed (module docstring); returns the summary (also in ``out_dir/summary.json``)."""
    from ..config import load_config
    from ..pipeline import Run, StageError
    from ..registry import get_registry

    cfg = load_config(config, list(overrides))
    reg = registry or get_registry().discover()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} is a file; give a folder for the evaluation")
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("--seeds: no seed to evaluate")
    summary: dict[str, Any] = {"config": cfg.name, "source": str(config), "overrides": list(overrides),
                               "seeds": seeds, "episodes": 0, "successes": 0, "success_rate": None,
                               "seconds": 0.0, "results": []}
    t_all = time.perf_counter()
    for plugin in observers:
        reg.pm.register(plugin)
    try:
        for i, seed in enumerate(seeds):
            run_dir = out / f"seed{seed}"
            t0 = time.perf_counter()
            record = _reuse(run_dir, cfg.to_yaml(), seed) if resume else None
            if record is None:
                run = Run(config=cfg, out_dir=run_dir, registry=reg, seed=seed)
                try:
                    result = run.execute()
                except StageError:
                    result = run.result
                except Exception as e:  # noqa: BLE001 - one bad episode never kills the batch
                    result = {"success": False, "message": f"{type(e).__name__}: {str(e)[:300]}"}
                record = episode_record(seed, result, run_dir, time.perf_counter() - t0)
            summary["results"].append(record)
            summary["episodes"] = len(summary["results"])
            summary["successes"] = sum(r["success"] for r in summary["results"])
            summary["success_rate"] = round(summary["successes"] / summary["episodes"], 4)
            summary["seconds"] = round(time.perf_counter() - t_all, 3)
            _write_json(out / "summary.json", summary)
            if progress is not None:
                progress(i + 1, len(seeds), record)
    finally:
        for plugin in observers:
            reg.pm.unregister(plugin)
    return summary


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
