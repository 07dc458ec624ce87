"""``d2f view RUN_OR_FLOW [--port P] [--export FILE]``: the web viewer (viser, extra ``viewer``).

Only typer is imported here; viser is imported when the command runs (d2f_core.viewer).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .cli_common import console as _console
from .cli_common import fail as _fail


def view(path: Path = typer.Argument(..., help="run folder (d2f run ... --out DIR) or a flow file (flow.npz)"),
         port: int = typer.Option(8080, "--port", help="port of the viewer (viser takes the next free one if busy)"),
         host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface)"),
         export: Optional[Path] = typer.Option(None, "--export", help="write a static recording and exit: "
                                               "FILE.html (one self-contained page) or FILE.viser (viser's "
                                               "recording format)"),
         step: int = typer.Option(0, "--step", help="flow step shown first"),
         occluded: str = typer.Option("hold", "--occluded", help="occluded particles: hold (grey, at their last "
                                      "visible position), hide, or raw (as stored)"),
         max_points: int = typer.Option(150_000, "--max-points", help="most scene-cloud points (pixel stride)"),
         seconds: Optional[float] = typer.Option(None, "--seconds", help="stop the server after this many "
                                                 "seconds (default: until Ctrl-C)")) -> None:
    """A web viewer: scene cloud, camera, 3D flow particles per step (visible / occluded), grasps, the plan."""
    from .types import DataError
    from .viewer import build_scene, export as export_scene, load_inputs, serve

    out = _console()
    try:
        scene = build_scene(load_inputs(path), max_cloud_points=max_points, occluded=occluded)
        for note in scene.notes:
            out.print(f"note: {note}", markup=False)
        if export is not None:
            written = export_scene(scene, export)
            kind = ("a self-contained page: open it in a browser, no server needed" if written.suffix.lower()
                    == ".html" else "a viser recording: serve it with viser's client (?playbackPath=)")
            out.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB; {kind})", markup=False)
            return
        viewer = serve(scene, host=host, port=port)
    except (DataError, OSError) as e:
        _fail(str(e), code=2)
    viewer.set_step(step)
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1") else host
    out.print(f"d2f view: http://{shown}:{viewer.port}  ({scene.num_steps} steps x {scene.particles.shape[1]} "
              f"particles; Ctrl-C stops)", markup=False)
    try:
        t0 = time.monotonic()
        while seconds is None or time.monotonic() - t0 < seconds:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
