"""``d2f world``: pictures of simulated worlds and oracle scene folders.

Commands (names and options are contracts):
  d2f world show TASK --embodiment NAME --out FILE.png [--seed N] [--width W --height H] [--camera NAME]
                 [--world PLUGIN]
      render the initial scene of TASK (e.g. open_door) with that robot.
  d2f world oracle TASK --out DIR [--seed N] [--num-frames 49] [--embodiment franka] [--width W --height H]
      write a scene folder in the official layout (camera_rgb.png, initial_depth.npy,
      camera_calibration_info.json, scene_data.yaml, rgb.mp4, depth_frames.npy, mask.png) from the
      world's oracle rollout (a scripted STAND-IN for a generated video), plus oracle_truth.npz with
      the movable part's true points per frame (see d2f_plugins.world.robosuite_world.oracle).

Only typer is imported at module level; the world is built inside the commands. Errors are one
red line and exit code 2 (set D2F_DEBUG=1 for tracebacks).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from .cli_common import console as _console
from .cli_common import fail as _fail
from .cli_common import os_error_line

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulated worlds: pictures of tasks and oracle scene folders.")




def _known_errors() -> tuple[type[BaseException], ...]:
    from .registry import PluginError
    from .types import DataError
    return (PluginError, DataError, ValueError, OSError)


def _fail_known(e: BaseException) -> None:
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
        _fail(os_error_line(e))
    _fail(str(e))


def _check_gl() -> None:
    """A MUJOCO_GL that cannot render is one line before any world is built (as under `d2f run`)."""
    from .gl import gl_choice
    problem = gl_choice().problem
    if problem and gl_choice().backend is not None:
        _fail(problem)


def _check_out(out: Path, kind: str) -> None:
    """--out must be writable: a file where a folder is needed, or a folder where a file is, is one line."""
    if not str(out).strip() or str(out) == ".":
        _fail(f"--out: empty path; give the {kind} to write")
    target = out if kind == "folder" else out.parent
    for parent in [target, *target.parents]:
        if parent.exists():
            if not parent.is_dir():
                _fail(f"--out {out}: {parent} is a file, not a folder; choose another --out")
            if not os.access(parent, os.W_OK):
                _fail(f"--out {out}: {parent} is not writable; choose a folder you can write")
            break
    if kind == "file" and out.is_dir():
        _fail(f"--out {out}: is a folder; give a .png file name")


def _build(world_plugin: str, task: str, embodiment: str, seed: int, width: int, height: int,
           camera: str | None = None) -> Any:
    """The world plugin with TASK and the named embodiment, reset to ``seed``."""
    from .registry import BuildContext, get_registry

    try:  # robosuite prints import-time notices; silence them before the embodiment imports it
        from d2f_plugins.world.robosuite_world import quiet_robosuite
        quiet_robosuite()
    except ImportError:
        pass

    reg = get_registry().discover()
    emb = reg.create("embodiment", embodiment, {}, where="embodiment")
    ctx = BuildContext(seed=seed, getter=lambda kind: emb if kind == "embodiment" else None)
    options: dict[str, Any] = {"task": task, "width": width, "height": height}
    if camera:
        options["camera"] = camera
    world = reg.create("world", world_plugin, options, ctx=ctx, where="world")
    obs = world.reset(seed)
    return world, obs


def _save_png(path: Path, rgb) -> None:
    try:
        from PIL import Image
    except ImportError:
        _fail("writing PNG files needs pillow: pip install 'dream2flow[io]'")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


@app.command("show")
def show(task: str = typer.Argument(..., help="task, e.g. open_door, bread_in_bowl, open_oven"),
         out: Path = typer.Option(..., "--out", help="PNG file to write"),
         embodiment: str = typer.Option("franka", "--embodiment", help="embodiment plugin: franka, spot, gr1"),
         seed: int = typer.Option(0, "--seed", help="placement seed"),
         width: int = typer.Option(640, "--width", help="image width, pixels"),
         height: int = typer.Option(480, "--height", help="image height, pixels"),
         camera: Optional[str] = typer.Option(None, "--camera", help="camera: the task's own (default) or a "
                                                                    "static camera of the model, e.g. frontview"),
         world_plugin: str = typer.Option("robosuite", "--world", help="world plugin")) -> None:
    """Render the initial scene of TASK with the robot of --embodiment to a PNG."""
    if out.suffix.lower() != ".png":
        _fail(f"--out {out}: give a .png file name")
    _check_out(out, "file")
    _check_gl()
    try:
        world, obs = _build(world_plugin, task, embodiment, seed, width, height, camera)
        rgb = obs.rgbd.rgb if obs.rgbd is not None else world.render().rgb
        robot = getattr(world.embodiment, "robot", embodiment) if hasattr(world, "embodiment") else embodiment
    except _known_errors() as e:
        _fail_known(e)
    try:
        _save_png(out, rgb)
    except OSError as e:
        _fail_known(e)
    _console().print(f"wrote {out} ({task}, {embodiment} = {robot}, seed {seed}, {width}x{height})", markup=False)


@app.command("oracle")
def oracle(task: str = typer.Argument(..., help="task, e.g. open_door, bread_in_bowl, open_oven"),
           out: Path = typer.Option(..., "--out", help="scene folder to write"),
           seed: int = typer.Option(0, "--seed", help="placement seed"),
           num_frames: int = typer.Option(49, "--num-frames", help="frames of the oracle video"),
           embodiment: str = typer.Option("franka", "--embodiment", help="embodiment plugin: franka, spot, gr1"),
           width: int = typer.Option(640, "--width", help="image width, pixels"),
           height: int = typer.Option(480, "--height", help="image height, pixels"),
           world_plugin: str = typer.Option("robosuite", "--world", help="world plugin")) -> None:
    """Write a scene folder (official layout) from the world's oracle rollout, plus oracle_truth.npz."""
    if num_frames < 2:
        _fail(f"--num-frames {num_frames}: a video needs at least 2 frames")
    _check_out(out, "folder")
    _check_gl()
    try:
        from .flow.scene import write_scene

        world, obs = _build(world_plugin, task, embodiment, seed, width, height)
        if not callable(getattr(world, "oracle_rollout", None)):
            _fail(f"--world {world_plugin}: this world has no oracle (capability 'oracle'); use robosuite")
        rgbd = obs.rgbd if obs.rgbd is not None else world.render()
        rollout = world.oracle_rollout(num_frames)
        mask = world.object_mask(world.task.object)
        write_scene(out, rgbd, world.task.instruction, world.task.object,
                    video=rollout.video(prompt=world.task.instruction, seed=seed), depth_frames=rollout.depth,
                    mask=mask, camera_name=rgbd.camera.name)
        rollout.save_truth(out / "oracle_truth.npz")
    except _known_errors() as e:
        _fail_known(e)
    ok = "passes" if rollout.success else "FAILS"
    _console().print(f"wrote {out}/ ({task}, seed {seed}, {num_frames} frames at {rollout.fps:g} fps, "
                     f"{width}x{height}); the oracle's final state {ok} the task's success check; "
                     f"rgb.mp4 is a simulator STAND-IN for a generated video", markup=False)
