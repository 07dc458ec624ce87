"""``d2f``: the command line.

Commands (names and options are contracts; users and acceptance tests call them):
  d2f plugins [--json]                     list plugins, their kind, package, status, extra
  d2f check [NAME...] [--json] [--world W] run the conformance suite on plugins (--world: embodiments
                                           bound to world W)
  d2f run CONFIG [--seed N] [--out DIR] [--set key=value ...]
  d2f demo [--out DIR] [--seed N]          run configs/demo.yaml
  d2f train CONFIG --out DIR [--resume] [--seed N] [--set key=value ...]
                                           train what the config learns; resumable after a kill
  d2f eval CONFIG --seeds A-B --out DIR [--set key=value ...] [--resume] [--executor ray [--address A]]
                                           episodes over seeds; DIR/summary.json
  d2f flow extract --scene DIR [--config FILE] [--set key=value ...] --out FLOW.npz [--camera NAME]
  d2f flow extract --scenes DIR... --out DIR [--executor ray [--address A]]
                                           one flow per scene into DIR/<scene-name>/; resumable
  d2f world show TASK --embodiment NAME --out FILE.png
  d2f world oracle TASK --out DIR
  d2f doctor [CONFIG] [--set key=value ...] [--json]
  d2f view RUN_OR_FLOW [--port P] [--export FILE.html|FILE.viser]
                                           web viewer (viser): scene cloud, camera, flow particles, grasps, plan
                                           can CONFIG run here (libraries, weights, keys, device, GPU
                                           memory, headless GL); exit 1 if not

Errors are one line naming the problem and the fix (exit code 2 for bad input, 1 for failures); the
text is printed as plain text (never rich markup) and clipped; `d2f --debug ...` (or D2F_DEBUG=1) shows
the traceback instead. One process at a time owns a run folder (``.d2f.lock`` holds its PID).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .cli_common import console as _console
from .cli_common import fail as _fail
from .cli_common import os_error_line as _os_error_line

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="dream2flow: generated video -> 3D object flow -> robot actions.")




def _known_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .pipeline import RunFolderInUse, StageError
    from .registry import PluginError
    from .types import DataError
    return (ConfigError, PluginError, DataError, StageError, OSError, RunFolderInUse)


def _fail_known(e: BaseException, code: int | None = None) -> None:
    """One line for a known error: an OSError names the path and says what to do (exit 2)."""
    if code is None:
        code = 1 if type(e).__name__ == "StageError" else 2
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
        _fail(_os_error_line(e), code=code)
    _fail(str(e), code=code)


def _executor_error() -> type[BaseException]:
    from .acting.executors import ExecutorError
    return ExecutorError


def _out_folder(out: str) -> Path:
    """--out as a Path; an empty value is an error (Path('') would silently be the current folder)."""
    if not str(out).strip():
        _fail("--out '': empty folder name; give the folder to write, e.g. --out runs/try1")
    return Path(out)


@app.callback()
def _main_options(debug: bool = typer.Option(False, "--debug", help="show the full traceback of an error")) -> None:
    """dream2flow: generated video -> 3D object flow -> robot actions."""
    if debug:
        import os
        os.environ["D2F_DEBUG"] = "1"


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="print a JSON list"),
            kind: Optional[str] = typer.Option(None, "--kind", help="only this kind")) -> None:
    """List installed plugins: kind, package, version, status (ok / unavailable / failed)."""
    from .registry import get_registry
    try:
        rows = get_registry().discover().rows()
    except _known_errors() as e:
        _fail(str(e))
    if kind:
        from .protocols import KINDS
        if kind not in KINDS:
            import difflib
            close = difflib.get_close_matches(kind, KINDS, n=1)
            _fail(f"--kind {kind[:60]!r}: not a component kind" + (f"; did you mean {close[0]!r}?" if close else "")
                  + f" Kinds: {', '.join(KINDS)}")
        rows = [r for r in rows if r["kind"] == kind]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table
    table = Table(title="dream2flow plugins", show_lines=False)
    for col in ("kind", "name", "status", "package", "extra", "description / reason"):
        table.add_column(col, overflow="fold")
    style = {"ok": "green", "unavailable": "yellow", "failed": "red"}
    for r in rows:
        from rich.markup import escape
        text = escape(r["error"] if r["status"] != "ok" else r["description"] or "")
        if r["stand_in"] and r["status"] == "ok":
            text = f"[dim](stand-in)[/] {text}"
        table.add_row(r["kind"], escape(r["name"]), f"[{style[r['status']]}]{r['status']}[/]",
                      escape(f"{r['package']} {r['version']}"), escape(r["extra"] or ""), text or "")
    import shutil
    _console(width=max(shutil.get_terminal_size((160, 40)).columns, 140)).print(table)
    from .gl import gl_choice
    sys.stdout.write(gl_choice().describe() + "\n")


@app.command()
def check(names: Optional[List[str]] = typer.Argument(None, help="plugin names (default: all usable)"),
          as_json: bool = typer.Option(False, "--json", help="print results as JSON"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="list every check"),
          world: Optional[str] = typer.Option(None, "--world", help="embodiments only: build this world plugin with "
                                              "each named embodiment, bind it, and also run the bound checks "
                                              "(fk/ik/joint_action against the world's actions and joint "
                                              "readings), e.g. d2f check robosuite-arm --world robosuite")) -> None:
    """Run the conformance suite; exit 1 on any failure."""
    from d2f_conformance import check_plugin, format_results

    from .registry import get_registry
    reg = get_registry().discover()
    if world is not None:
        if not names:
            _fail("--world: name the embodiment(s) to bind, e.g. d2f check robosuite-arm --world robosuite")
        try:
            reg.get("world", world, where="--world")
        except Exception as e:
            _fail(str(e))
    if not names:
        names = sorted({e.manifest.name for e in reg.entries() if reg.unavailable_reason(e.manifest) is None})
    known = {e.manifest.name for e in reg.entries()}
    results = []
    for name in names:
        if name not in known:
            try:
                reg.get("tracker", name)  # raises with the installed list and "did you mean"
            except Exception as e:
                msg = str(e).replace("no tracker plugin", "no plugin")
                _fail(msg)
        if world is not None and not any(e.manifest.name == name for e in reg.entries("embodiment")):
            kinds = sorted({e.manifest.kind for e in reg.entries() if e.manifest.name == name})
            _fail(f"--world: {name!r} is a {'/'.join(kinds)} plugin; --world binds embodiments (e.g. franka, "
                  "robosuite-arm): drop --world or name an embodiment")
        results.extend(check_plugin(name, registry=reg, world=world))
    failed = [r for r in results if r.status == "failed"]
    if as_json:
        sys.stdout.write(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    else:
        shown = results if verbose else [r for r in results if r.status != "passed"]
        if shown:
            _console().print(format_results(shown, summary=False), markup=False)
        n_pass = sum(r.status == "passed" for r in results)
        n_skip = sum(r.status == "skipped" for r in results)
        _console().print(f"checked {len(names)} plugin name(s): {', '.join(names)}", markup=False)
        _console().print(f"conformance: {n_pass} passed, {len(failed)} failed, {n_skip} skipped", markup=False)
    if failed:
        raise typer.Exit(1)


def _run(config: Path | str, seed: Optional[int], out: Optional[Path], overrides: list[str],
         allow_partial: bool) -> dict:
    from .config import load_config
    from .observers import RichProgress
    from .pipeline import Run
    from .registry import get_registry
    if out is not None and not str(out).strip():
        from .config import ConfigError
        raise ConfigError("--out '': empty folder name; give the run folder, e.g. --out runs/try1 "
                          "(or leave --out out for runs/NAME-seedN)")
    cfg = load_config(config, overrides)
    seed = cfg.seed if seed is None else seed
    out = Path(out) if out else Path("runs") / f"{cfg.name}-seed{seed}"
    reg = get_registry().discover()
    observer = RichProgress(_console(stderr=True))
    reg.pm.register(observer)
    try:
        run = Run(config=cfg, out_dir=out, registry=reg, seed=seed, allow_partial=allow_partial)
        result = run.execute()
    finally:
        reg.pm.unregister(observer)
    observer.summary(result, out)
    return result


@app.command()
def run(config: Path = typer.Argument(..., help="YAML run config"),
        seed: Optional[int] = typer.Option(None, "--seed", help="random seed (default: the config's)"),
        out: Optional[str] = typer.Option(None, "--out", help="run folder (default runs/NAME-seedN)"),
        overrides: Optional[List[str]] = typer.Option(None, "--set", help="override, e.g. solver.options.w_flow=5")) -> None:
    """Compose the configured plugins, run the stages, write DIR/result.json."""
    try:
        result = _run(config, seed, out, overrides or [], allow_partial=False)
    except _known_errors() as e:
        _fail_known(e)
    if result.get("success") is False:
        raise typer.Exit(1)


@app.command("eval")
def eval_(config: str = typer.Argument(..., help="YAML run config or a shipped recipe name"),
          seeds: str = typer.Option(..., "--seeds", help="seeds: a range A-B, a list 0,3,5 or one seed"),
          out: str = typer.Option(..., "--out", help="evaluation folder: seed<S>/ run folders and summary.json"),
          overrides: Optional[List[str]] = typer.Option(None, "--set", help="override, e.g. solver.plugin=avdc"),
          resume: bool = typer.Option(False, "--resume", help="reuse finished episodes made with the same config"),
          executor: str = typer.Option("serial", "--executor", help="serial (default) or ray (extra ray; "
                                       "docs/scale.md)"),
          address: Optional[str] = typer.Option(None, "--address", help="--executor ray: an existing cluster "
                                                "(auto, ray://HOST:10001); default: a local one"),
          workers: Optional[int] = typer.Option(None, "--workers", help="--executor ray: model actors (default: "
                                                "as many as the cluster's CPUs, or GPUs with --gpus)"),
          gpus: float = typer.Option(0.0, "--gpus", help="--executor ray: GPUs per episode / model actor")) -> None:
    """Run one episode per seed (perception cached per seed); write DIR/summary.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .acting.evaluate import evaluate, parse_seeds
    out = _out_folder(out)
    if executor != "ray" and (workers is not None or gpus):
        _fail("--workers/--gpus are for --executor ray; add --executor ray or drop them")
    if (workers is not None and workers < 1) or gpus < 0:
        _fail("--workers must be at least 1 and --gpus at least 0 (e.g. --gpus 1, or 0.5 for two actors per GPU)")
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as e:
        _fail(str(e))
    console = _console(stderr=True)
    with Progress(TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[ok]}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("episodes", total=len(seed_list), ok="")

        def progress(done: int, total: int, rec: dict) -> None:
            ok = sum(r["success"] for r in summary_rows) + int(rec["success"])
            summary_rows.append(rec)
            mark = "success" if rec["success"] else f"failed: {rec['reason'][:120]}"
            bar.console.print(f"seed {rec['seed']}: {mark} ({rec['seconds']:.0f} s)", markup=False, highlight=False)
            bar.update(task, completed=done, ok=f"{ok}/{done} succeeded")

        summary_rows: list = []
        try:
            summary = evaluate(config, seed_list, out, overrides=overrides or [], resume=resume, progress=progress,
                               executor=executor, address=address,
                               executor_options={"workers": workers, "num_gpus": gpus} if executor == "ray" else None)
        except _known_errors() + (ValueError, OSError, _executor_error()) as e:
            bar.stop()
            _fail(str(e))
    _console().print(f"{summary['successes']}/{summary['episodes']} episodes succeeded; summary: "
                     f"{Path(out) / 'summary.json'}", markup=False)


@app.command("train")
def train_command(config: str = typer.Argument(..., help="YAML run config or a shipped recipe name"),
                  out: str = typer.Option(..., "--out", help="training folder: checkpoints, log.csv, the trained model"),
                  resume: bool = typer.Option(False, "--resume", help="continue the training in --out from its last "
                                              "checkpoint"),
                  seed: Optional[int] = typer.Option(None, "--seed", help="seed (default: train.seed, then the config's)"),
                  overrides: Optional[List[str]] = typer.Option(None, "--set", help="override, e.g. train.steps=20")) -> None:
    """Train what the config learns (a trainable dynamics model, a solver that trains); --resume continues."""
    from .acting.train import TrainError, load_train_config, train
    out = _out_folder(out)
    try:
        cfg, options = load_train_config(config, overrides or [])
        status = train(cfg, out, train_config=options, resume=resume, seed=seed, console=_console(stderr=True))
    except (TrainError, *_known_errors()) as e:
        _fail_known(e)
    except Exception as e:  # noqa: BLE001 - a learner failed: one line (D2F_DEBUG=1 for the traceback)
        _fail(f"training failed: {type(e).__name__}: {e} (state kept in {out}; fix and run again with --resume)",
              code=1)
    _console().print(f"trained {', '.join(status.get('learners', {}))}: {out} (log.csv, train.json)", markup=False)


@app.command()
def doctor(config: Optional[str] = typer.Argument(None, help="YAML run config or a shipped recipe name "
                                                 "(default: real/bread_in_bowl, the paper's real models)"),
           overrides: Optional[List[str]] = typer.Option(None, "--set", help="override, e.g. video.plugin=veo3"),
           as_json: bool = typer.Option(False, "--json", help="print the report as JSON")) -> None:
    """Check that CONFIG can run here: libraries, weights, API keys, device, GPU memory, GL; exit 1 if not."""
    from dataclasses import asdict

    from .doctor import diagnose
    report = diagnose(config, overrides=overrides or [])
    if as_json:
        data = asdict(report)
        data["ok"] = report.ok
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        for line in report.lines():
            sys.stdout.write(line + "\n")
    if not report.ok:
        raise typer.Exit(1)


def demo_config_path() -> Path:
    """configs/demo.yaml: from the working tree when present, else the installed copy."""
    local = Path("configs/demo.yaml")
    if local.is_file():
        return local
    from importlib.resources import files
    return Path(str(files("d2f_configs") / "demo.yaml"))


@app.command()
def demo(out: Optional[str] = typer.Option(None, "--out", help="run folder (default runs/demo-seedN)"),
         seed: Optional[int] = typer.Option(None, "--seed", help="random seed"),
         overrides: Optional[List[str]] = typer.Option(None, "--set", help="override a config value")) -> None:
    """Run configs/demo.yaml, the embedded default. Stops, saying so, where a plugin is missing."""
    try:
        result = _run(demo_config_path(), seed, out, overrides or [], allow_partial=True)
    except _known_errors() as e:
        _fail_known(e, code=1)
    if result.get("stopped_at") or result.get("success") is False:
        raise typer.Exit(1)


flow_app = typer.Typer(add_completion=False, no_args_is_help=True, help="3D object flow from a scene folder.")
app.add_typer(flow_app, name="flow")


@flow_app.command("extract")
def flow_extract(
        more_scenes: Optional[List[Path]] = typer.Argument(None, metavar="[SCENE...]", help="with --scenes: more "
                                                          "scene folders (--scenes A B C)", show_default=False),
        scene: Optional[Path] = typer.Option(None, "--scene", help="scene folder: camera_rgb.png, initial_depth.npy, "
                                   "camera_calibration_info.json, scene_data.yaml [, rgb.mp4, depth_frames.npy, mask.png]"),
        scenes: Optional[List[Path]] = typer.Option(None, "--scenes", help="batch: scene folders, or folders of "
                                                    "them; one flow each into OUT/<scene-name>/, resumable"),
        out: Path = typer.Option(..., "--out", help="output flow .npz (quality report, pictures and the "
                                 "run folder are written beside it); with --scenes a folder"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML config (video/depth/segmenter/"
                                              "tracker plugins, flow options)"),
        overrides: Optional[List[str]] = typer.Option(None, "--set", help="override, e.g. tracker.plugin=cotracker3"),
        camera: Optional[str] = typer.Option(None, "--camera", help="camera name when the calibration has several"),
        executor: str = typer.Option("serial", "--executor", help="with --scenes: serial (default) or ray "
                                     "(docs/scale.md)"),
        address: Optional[str] = typer.Option(None, "--address", help="--executor ray: an existing cluster "
                                              "(auto, ray://HOST:10001); default: a local one")) -> None:
    """Extract 3D object flow (T x N x 3, metres, world frame) from a scene folder (or many: --scenes)."""
    from .flow.extract import extract
    from .observers import RichProgress
    if scenes or more_scenes:
        if scene is not None or not scenes:
            _fail("give one scene with --scene DIR --out FLOW.npz, or many with --scenes DIR... --out DIR")
        _flow_extract_batch([*scenes, *(more_scenes or [])], out, config, overrides or [], camera, executor, address)
        return
    if scene is None:
        _fail("missing --scene DIR (one scene folder; --scenes DIR... for a batch)")
    if executor != "serial" or address:
        _fail("--executor/--address are for a batch (--scenes DIR...); one --scene runs here")
    observer = RichProgress(_console(stderr=True))
    try:
        result = extract(scene, out, config=config, overrides=overrides or [], camera=camera,
                         observers=[observer])
    except _known_errors() as e:
        observer._stop_status()
        _fail_known(e)
    except ValueError as e:  # anything else a bad scene can raise: still one line
        observer._stop_status()
        _fail(f"{type(e).__name__}: {e}")
    c = _console()
    for s in result.get("stand_ins", []):
        c.print(f"stand-in: {s['kind']} = {s['plugin']} ({s['what']})", markup=False)
    for name, path in result["outputs"].items():
        c.print(f"{name}: {path}", markup=False)


def _flow_extract_batch(scenes: list[Path], out: Path, config: Optional[Path], overrides: list[str],
                        camera: Optional[str], executor: str, address: Optional[str]) -> None:
    from .flow.batch import extract_batch
    c = _console()

    def progress(done: int, total: int, rec: dict) -> None:
        why = f": {rec['reason'][:160]}" if rec["status"] == "failed" else ""
        c.print(f"[{done}/{total}] {rec['name']}: {rec['status']}{why} ({rec.get('seconds', 0):.0f} s)",
                markup=False, highlight=False)

    try:
        summary = extract_batch(scenes, out, config=config, overrides=overrides, camera=camera, executor=executor,
                                address=address, progress=progress)
    except _known_errors() + (ValueError, _executor_error()) as e:
        _fail(str(e))
    c.print(f"{summary['ok']} extracted, {summary['skipped']} already done, {summary['failed']} failed; "
            f"summary: {Path(out) / 'batch.json'}", markup=False)
    if summary["failed"]:
        raise typer.Exit(1)


def _add_world_commands() -> None:
    try:
        from .cli_world import app as world_app
    except ModuleNotFoundError as e:  # the world commands arrive with the simulated worlds
        if e.name != f"{__package__}.cli_world":
            raise
        return
    app.add_typer(world_app, name="world")


_add_world_commands()

from .cli_view import view as _view  # noqa: E402 - d2f view: typer only here, viser when it runs

app.command("view")(_view)


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        if len(sys.argv) > 1 and sys.argv[1] == "train":
            text = "interrupted: the training folder keeps its last checkpoint; continue with the same command and --resume"
        else:
            text = "interrupted: the run folder keeps the finished stages; run again to resume"
        _console(stderr=True).print(text, markup=False)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - nothing escapes as a traceback unless --debug / D2F_DEBUG=1
        import os
        if os.environ.get("D2F_DEBUG"):
            raise
        from .cli_common import one_line
        _console(stderr=True).print(f"error: {one_line(f'{type(e).__name__}: {e}')} (unexpected; run again with "
                                    "d2f --debug ... for the traceback and report it)", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
