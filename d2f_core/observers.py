"""Built-in observer: a rich progress display driven by the lifecycle hooks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .hookspecs import hookimpl


def _describe(artifact: Any) -> str:
    from .types import DepthVideo, ObjectFlow, Video
    if isinstance(artifact, Video):
        return f"{artifact.num_frames} frames {artifact.width}x{artifact.height}"
    if isinstance(artifact, DepthVideo) and artifact.alignment is not None:
        a = artifact.alignment
        return f"aligned: scale {a.scale:.3f}, shift {a.shift:+.3f} m, residual {a.residual * 100:.2f} cm"
    if isinstance(artifact, ObjectFlow):
        vis = artifact.visible.mean() if artifact.visible.size else 0.0
        return f"{artifact.num_points} points x {artifact.num_frames} frames, {vis:.0%} visible"
    if isinstance(artifact, dict) and "tracks" in artifact:
        return f"{artifact['tracks'].num_points} tracks"
    if isinstance(artifact, dict) and "candidates" in artifact:
        return f"{len(artifact['candidates'])} candidates; {artifact['reason']}"
    if isinstance(artifact, dict) and "success" in artifact:
        return f"success={artifact['success']} after {artifact.get('steps')} steps"
    if hasattr(artifact, "sum") and getattr(artifact, "dtype", None) == bool:
        return f"{int(artifact.sum())} object pixels"
    return ""


class RichProgress:
    """Prints one line per stage (with timing, cache hits and a short summary) and a spinner."""

    def __init__(self, console=None) -> None:
        from rich.console import Console
        self.console = console or Console(stderr=True)
        self._status = None
        self._t0 = time.perf_counter()

    @hookimpl
    def d2f_stage_started(self, run, stage):
        self._stop_status()
        self._status = self.console.status(f"[bold]{_esc(stage)}[/] …")
        self._status.start()

    @hookimpl
    def d2f_stage_progress(self, run, stage, done, total, message):
        if stage == "warning":
            self.console.print(f"[yellow]! {_esc(message)}[/]", markup=True, highlight=False)
            return
        if self._status is not None:
            frac = f" {done}/{total}" if total else f" {done}"
            self._status.update(f"[bold]{_esc(stage)}[/]{frac} {_esc(message)}")

    @hookimpl
    def d2f_stage_finished(self, run, stage, artifact, seconds, cached):
        self._stop_status()
        tag = "[dim](cached)[/]" if cached else ""
        self.console.print(f"[green]✓[/] {stage:<8} {seconds:6.2f} s {tag} {_esc(_describe(artifact))}")

    @hookimpl
    def d2f_episode_finished(self, run, result):
        ok = result.get("success")
        self.console.print(f"[bold {'green' if ok else 'red'}]episode: success={ok}[/]")

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def summary(self, result: dict[str, Any], out: Path) -> None:
        self._stop_status()
        c = self.console
        out = Path(out)
        if result.get("stopped_at"):
            c.print(f"[yellow]{_esc(result.get('message'))}[/]")
        stages = result.get("stages") or {}
        total = sum(float(v.get("seconds", 0.0)) for v in stages.values() if isinstance(v, dict))
        if result.get("success") is not None:
            verdict = "[bold green]SUCCESS[/]" if result["success"] else "[bold red]FAILED[/]"
            c.print(f"{_esc(result.get('name', 'run'))}: {verdict} after {result.get('steps', 0)} steps; "
                    f"{total:.0f} s in all ("
                    + ", ".join(f"{k} {v.get('seconds', 0):.1f} s" for k, v in stages.items()
                                if isinstance(v, dict) and v.get("status") == "done") + ")")
        plan = result.get("plan") or {}
        if plan:
            if plan.get("executable") is False:
                c.print(f"[yellow]plan not executed: {_esc(plan.get('reason'))}[/]")
            elif plan.get("tracking_error_mm") is not None:
                c.print(f"plan ({_esc(plan.get('solver'))}): the held points follow the motion within "
                        f"{plan['tracking_error_mm']:.1f} mm (median per frame, worst frame); "
                        f"{plan.get('waypoints', '?')} waypoints; phases {', '.join(plan.get('phases') or [])}")
        ins = result.get("stand_ins", [])
        if ins:
            c.print("[dim]stand-ins (not real models): " + ", ".join(_esc(f"{s['kind']} = {s['plugin']}") for s in ins)
                    + " (what each is: result.json, stand_ins)[/]")
        pics = result.get("pictures") or {}
        if pics:
            c.print("pictures:")
            for name, p in pics.items():
                c.print(f"  {name:<10} {out / p}", markup=False)
        c.print(f"run folder: {out}  (result.json, config.yaml, manifest.json"
                f"{', flow.npz' if (out / 'flow.npz').exists() else ''}"
                f"{', plan.json' if (out / 'plan.json').exists() else ''}"
                f"{', rollout.mp4' if (out / 'rollout.mp4').exists() else ''})", markup=False)


def _esc(text: Any) -> str:
    """Plain text for a rich markup string: ``[veo]`` stays ``[veo]``, ``[/x]`` cannot break printing."""
    from rich.markup import escape
    return escape(str(text))
