"""Compact run-folder artifacts (issue 15): lossless frames, depth quantised to 0.1 mm, old run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from d2f_core import DataError, ObjectFlow, Video
from d2f_core import artifacts as A
from d2f_core.config import load_config
from d2f_core.flow.scene import write_scene
from d2f_core.pipeline import file_sha256
from d2f_conformance.synthetic import rigid_box_sequence


# ----------------------------------------------------------------------------- frames: exact round trip


@pytest.mark.parametrize("shape", [(5, 24, 32, 3), (1, 7, 9, 3), (4, 6, 5), (3, 8, 8, 4), (0, 4, 4, 3)])
def test_frames_round_trip_exactly(shape):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=shape, dtype=np.uint8)  # noise: the worst case for the differences
    enc = A.encode_frames(frames)
    back = A.decode_frames(enc)
    assert back.dtype == np.uint8 and back.shape == frames.shape
    assert np.array_equal(back, frames)


def test_frames_of_a_rendered_sequence_round_trip_and_shrink(tmp_path):
    seq = rigid_box_sequence(num_frames=12, width=160, height=120)
    A.save_frames(tmp_path / "v.npz", seq.rgb, fps=8.0)
    assert np.array_equal(A.load_frames(tmp_path / "v.npz"), seq.rgb)
    assert (tmp_path / "v.npz").stat().st_size < seq.rgb.nbytes / 4
    with np.load(tmp_path / "v.npz") as z:
        assert str(z["d2f_format"]) == A.FRAMES_FORMAT and float(z["fps"]) == 8.0


def test_frames_refuse_non_uint8():
    with pytest.raises(DataError, match="uint8"):
        A.encode_frames(np.zeros((2, 4, 4, 3), np.float32))


# ----------------------------------------------------------------------------- depth: 0.1 mm


def test_depth_round_trip_within_half_a_step_and_keeps_invalid():
    rng = np.random.default_rng(1)
    d = rng.uniform(0.3, 4.0, size=(4, 20, 30)).astype(np.float32)
    d[0, 0, 0], d[1, 2, 3], d[2, 5, 5], d[3, 1, 1], d[3, 2, 2] = 0.0, np.nan, -0.2, np.inf, 1e-6
    back = A.decode_depth(A.encode_depth(d))
    assert back.dtype == np.float32 and back.shape == d.shape
    ok = np.isfinite(d) & (d >= A.DEPTH_STEP_M / 2)
    assert np.abs(back[ok] - d[ok]).max() <= A.DEPTH_STEP_M / 2 + 1e-6
    assert back[0, 0, 0] == 0 and back[2, 5, 5] == 0      # 0 and negative: invalid as 0
    assert np.isnan(back[1, 2, 3]) and np.isnan(back[3, 1, 1])  # NaN, inf: invalid as NaN
    assert back[3, 2, 2] > 0                               # tiny but valid stays valid (one step)
    # the pipeline keeps quantise_depth() in memory: exactly what decoding gives back
    assert np.array_equal(A.quantise_depth(d), back, equal_nan=True)


def test_far_depth_gets_a_coarser_recorded_step():
    d = np.array([[[0.5, 20.0]]], np.float32)
    enc = A.encode_depth(d)
    step = float(enc["depth_step_m"])
    assert step == pytest.approx(4e-4) and 20.0 / step < 65535
    assert np.abs(A.decode_depth(enc) - d).max() <= step / 2 + 1e-6


# ----------------------------------------------------------------------------- damaged / foreign files


def test_truncated_unknown_and_oversized_files_say_re_run(tmp_path, monkeypatch):
    frames = np.random.default_rng(2).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    enc = A.encode_frames(frames)
    cut = dict(enc, data=enc["data"][: len(enc["data"]) // 2])
    with pytest.raises(DataError, match="re-run"):
        A.decode_frames(cut)
    with pytest.raises(DataError, match="re-run"):
        A.decode_frames(dict(enc, d2f_format=np.array("frames/9")))
    with pytest.raises(DataError, match="re-run"):
        A.decode_depth(dict(A.encode_depth(np.ones((2, 3, 3), np.float32)), data=np.zeros(5, np.uint8)))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="re-run"):
        A.load_frames(tmp_path / "junk.npz")
    monkeypatch.setenv("D2F_MAX_ARRAY_BYTES", "100")  # a small file declaring a big array is refused unread
    with pytest.raises(DataError, match="cap"):
        A.decode_frames(enc)


# ----------------------------------------------------------------------------- run folders


@pytest.fixture(scope="module")
def seq():
    return rigid_box_sequence(num_frames=8, width=96, height=72)


def _run(tmp_path: Path, scene: Path):
    from d2f_core.pipeline import Run
    cfg = load_config(None, [f"scene={scene}", "tracker.plugin=zero-motion", "flow.num_points=16",
                             "flow.pictures=false", "flow.background_points=0"])
    return Run(config=cfg, out_dir=tmp_path / "run")


def _scene(tmp_path: Path, seq) -> Path:
    pytest.importorskip("PIL")
    pytest.importorskip("imageio_ffmpeg")
    return write_scene(tmp_path / "scene", seq.rgbd(0), "move the box", "box", video=Video(frames=seq.rgb, fps=8.0),
                       depth_frames=seq.depth, mask=seq.mask("box"))


def _rehash(run_dir: Path, stage: str, name: str) -> None:
    meta_path = run_dir / "stages" / f"{stage}.json"
    meta = json.loads(meta_path.read_text())
    meta["files"][name] = file_sha256(run_dir / name)
    meta_path.write_text(json.dumps(meta))


def test_run_folder_is_compact_and_resumes_from_the_encoded_files(tmp_path, seq):
    scene = _scene(tmp_path, seq)
    run = _run(tmp_path, scene)
    first = run.execute()
    run_dir = tmp_path / "run"
    with np.load(run_dir / "video.npz") as z:
        assert str(z["d2f_format"]) == A.FRAMES_FORMAT
    assert np.array_equal(A.load_frames(run_dir / "video.npz"), run.artifacts["video"].frames)
    depth = A.load_depth(run_dir / "depth.npz")
    assert np.abs(depth - seq.depth).max() <= A.DEPTH_STEP_M / 2 + 1e-5  # aligned scale 1, shift 0
    second = _run(tmp_path, scene).execute()
    assert all(second["stages"][s]["cached"] for s in ("video", "depth", "track", "flow")), second["stages"]
    assert not [w for w in second.get("warnings", []) if "cached" in w], second["warnings"]
    assert first["completed"] == second["completed"]


def test_a_run_folder_of_the_old_raw_format_still_loads(tmp_path, seq):
    """Run folders written before the compact format (raw frames and float32 depth) are reused as they are."""
    scene = _scene(tmp_path, seq)
    _run(tmp_path, scene).execute()
    run_dir = tmp_path / "run"
    flow_before = ObjectFlow.load(run_dir / "flow.npz")
    with np.load(run_dir / "video.npz") as z:
        meta, fps = str(z["meta"]), float(z["fps"])
    with np.load(run_dir / "depth.npz") as z:
        model, alignment = str(z["model"]), z["alignment"]
    np.savez(run_dir / "video.npz", frames=seq.rgb, fps=fps, meta=meta)            # the old writers, verbatim
    np.savez(run_dir / "depth.npz", depth=seq.depth.astype(np.float32), model=model, alignment=alignment)
    _rehash(run_dir, "video", "video.npz")
    _rehash(run_dir, "depth", "depth.npz")
    # the old tracks depended on the flow of the old depth: force the flow stage to lift again from the old file
    (run_dir / "stages" / "flow.json").unlink()
    res = _run(tmp_path, scene).execute()
    assert res["stages"]["video"]["cached"] and res["stages"]["depth"]["cached"], res["stages"]
    assert not [w for w in res.get("warnings", []) if "cached" in w], res["warnings"]
    flow = ObjectFlow.load(run_dir / "flow.npz")
    assert np.allclose(flow.points, flow_before.points, atol=1e-4, equal_nan=True)


def test_an_unreadable_cached_artifact_is_recomputed_saying_re_run(tmp_path, seq):
    scene = _scene(tmp_path, seq)
    _run(tmp_path, scene).execute()
    run_dir = tmp_path / "run"
    with np.load(run_dir / "video.npz") as z:
        entries = {k: z[k] for k in z.files}
    entries["d2f_format"] = np.array("frames/9")  # a newer (or foreign) format, hash recorded as if genuine
    np.savez(run_dir / "video.npz", **entries)
    _rehash(run_dir, "video", "video.npz")
    run = _run(tmp_path, scene)
    res = run.execute()
    assert res["stages"]["video"]["cached"] is False
    assert any("video" in w and "re-run" in w for w in res.get("warnings", [])), res.get("warnings")
    assert np.array_equal(A.load_frames(run_dir / "video.npz"), run.artifacts["video"].frames)
    with pytest.raises(DataError, match="re-run"):
        A.decode_frames(entries)
