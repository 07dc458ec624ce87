"""``file`` video model: plays back a recorded or pre-generated video as if it were generated.

Reads mp4 (and other ffmpeg formats: mov, avi, mkv, webm), gif, a folder of PNG/JPG frames
(natural sort by file name, so ``frame_2.png`` comes before ``frame_10.png``), or a ``.npy`` /
``.npz`` array of uint8 T x H x W x 3 RGB frames. Grayscale and RGBA frames become RGB.

The module also provides :func:`write_video`, which saves uint8 RGB frames by suffix
(``.mp4`` / ``.gif`` / ``.npy`` / ``.npz`` / a folder name without suffix for PNG frames); the tests
use it, and the pipeline saves its videos with it.

Heavy libraries (imageio, imageio-ffmpeg, Pillow) are imported inside functions only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from d2f_core import DataError, Manifest, Video, hookimpl
from d2f_core.validate import check_image

__all__ = ["FileVideoOptions", "FileVideoModel", "read_video", "write_video", "subsample_indices"]

MOVIE_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_FPS = 8.0
"""Frame rate assumed for sources that do not store one (PNG folders, .npy) without ``fps``."""


class FileVideoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="video to play back: .mp4/.mov/.avi/.mkv/.webm, .gif, a folder of "
                                  ".png/.jpg frames, or .npy/.npz uint8 T x H x W x 3 RGB")
    fps: float | None = Field(default=None, gt=0,
                              description="frames per second of the file (Hz); overrides what the file "
                                          f"stores. Files without a rate (PNG folder, .npy) default to "
                                          f"{DEFAULT_FPS:g}")


# --------------------------------------------------------------------------- helpers


def _natural_key(name: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def _to_rgb(frames: np.ndarray, where: str) -> np.ndarray:
    """uint8 T x H x W (x 1/2/3/4) -> uint8 T x H x W x 3 RGB (gray repeated, alpha dropped)."""
    a = np.asarray(frames)
    if a.dtype != np.uint8:
        hint = ("values look like 0-1 floats: save np.round(x * 255).astype(np.uint8)"
                if np.issubdtype(a.dtype, np.floating) and a.size and np.nanmax(a) <= 1.0
                else "save np.clip(x, 0, 255).astype(np.uint8)")
        raise DataError(f"{where}: frames must be uint8 RGB 0-255, got dtype {a.dtype}; {hint}")
    if a.ndim == 3:  # T x H x W grayscale
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 2, 3, 4):
        raise DataError(f"{where}: expected frames T x H x W x 3 (RGB; gray or RGBA accepted), "
                        f"got shape {a.shape}"
                        + ("; channels-first input must be moved last with np.moveaxis(x, 1, -1)"
                           if a.ndim == 4 and a.shape[1] in (1, 3, 4) else ""))
    c = a.shape[-1]
    if c in (1, 2):  # gray, gray + alpha
        a = np.repeat(a[..., :1], 3, axis=-1)
    elif c == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


def _pil_to_rgb(img: Any) -> np.ndarray:
    """A Pillow image (any mode) -> uint8 H x W x 3 RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise DataError(f"{getattr(img, 'filename', 'image')}: {img.mode} images are not 8-bit "
                        "colour frames; save frames as 8-bit PNG/JPG")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _require(module: str, pip_name: str, what: str) -> Any:
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"{what} needs {pip_name} (not installed): pip install 'dream2flow[io]' "
                        f"(or pip install {pip_name})") from None


def _read_movie(path: Path) -> tuple[np.ndarray, float | None]:
    imageio = _require("imageio.v2", "imageio imageio-ffmpeg", f"reading {path}")
    _require("imageio_ffmpeg", "imageio-ffmpeg", f"reading {path}")
    try:
        reader = imageio.get_reader(str(path), format="FFMPEG")
    except Exception as e:  # noqa: BLE001 - ffmpeg/IO errors vary
        raise DataError(f"{path}: cannot open as a video ({type(e).__name__}: {e})") from None
    try:
        fps = reader.get_meta_data().get("fps")
        frames = [np.asarray(f) for f in reader]
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot decode video frames ({type(e).__name__}: {e})") from None
    finally:
        reader.close()
    if not frames:
        raise DataError(f"{path}: the video holds no frames")
    return _to_rgb(np.stack(frames), str(path)), (float(fps) if fps else None)


def _read_gif(path: Path) -> tuple[np.ndarray, float | None]:
    """All frames of a gif. Frames whose duration is k times the shortest are repeated k times
    (GIF writers merge identical consecutive frames into one longer frame)."""
    Image = _require("PIL.Image", "pillow", f"reading {path}")
    from PIL import ImageSequence
    try:
        with Image.open(path) as im:
            frames, durations = [], []
            for frame in ImageSequence.Iterator(im):
                frames.append(_pil_to_rgb(frame))
                durations.append(float(frame.info.get("duration", 0) or 0))
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read as a gif ({type(e).__name__}: {e})") from None
    positive = [d for d in durations if d > 0]
    if not positive:
        return np.stack(frames), None
    base = min(positive)
    repeats = [max(1, int(np.floor(d / base + 0.5))) if d > 0 else 1 for d in durations]
    out = np.stack([f for f, r in zip(frames, repeats) for _ in range(r)])
    return out, 1000.0 / base


def _read_folder(path: Path) -> tuple[np.ndarray, float | None]:
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise DataError(f"{path}: folder holds no .png/.jpg/.jpeg frames")
    Image = _require("PIL.Image", "pillow", f"reading {path}")
    frames = []
    for f in files:
        try:
            with Image.open(f) as im:
                frames.append(_pil_to_rgb(im))
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{f}: cannot read image ({type(e).__name__}: {e})") from None
    shapes = {fr.shape for fr in frames}
    if len(shapes) > 1:
        raise DataError(f"{path}: frames differ in size {sorted(shapes)}; every frame must be the "
                        "same width and height")
    return np.stack(frames), None


def _read_array(path: Path) -> tuple[np.ndarray, float | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: not a readable numpy file ({type(e).__name__}: {e})") from None
    fps = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded as z:
            keys = list(z.files)
            if "fps" in keys:
                fps = float(z["fps"])
            arrays = [k for k in keys if k != "fps"]
            if "frames" in arrays:
                key = "frames"
            elif len(arrays) == 1:
                key = arrays[0]
            else:
                raise DataError(f"{path}: holds arrays {keys}; name the frames array 'frames' "
                                "(np.savez(path, frames=..., fps=...))")
            arr = z[key]
    else:
        arr = loaded
    return _to_rgb(arr, str(path)), fps


def read_video(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Read ``path`` -> (uint8 T x H x W x 3 RGB frames, fps stored in the file or None).

    Raises DataError (a ValueError) naming the path when it is missing or unreadable.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"video file not found: {p} (video.options.path); give an existing .mp4, "
                        ".gif, .npy/.npz or a folder of PNG/JPG frames")
    suffix = p.suffix.lower()
    if p.is_dir():
        frames, fps = _read_folder(p)
    elif suffix in (".npy", ".npz"):
        frames, fps = _read_array(p)
    elif suffix == ".gif":
        frames, fps = _read_gif(p)
    elif suffix in MOVIE_SUFFIXES:
        frames, fps = _read_movie(p)
    else:
        raise DataError(f"{p}: unsupported video format {suffix!r}; use "
                        f"{', '.join(MOVIE_SUFFIXES)}, .gif, .npy, .npz or a folder of PNG/JPG frames")
    if frames.shape[0] < 2:
        raise DataError(f"{p}: holds {frames.shape[0]} frame(s); a video needs at least 2")
    return frames, fps


def write_video(path: str | Path, frames: np.ndarray, fps: float = DEFAULT_FPS) -> Path:
    """Save uint8 T x H x W x 3 RGB ``frames`` at ``fps`` (Hz); the format follows ``path``.

    * ``.mp4`` (and .mov/.mkv/.avi): H.264, high quality (crf 12); yuv420p when width and height
      are even, else yuv444p so the size is kept exactly. Lossy.
    * ``.gif``: palette-quantised (lossy colours); identical consecutive frames are merged by
      the GIF writer and expanded again by :func:`read_video`. GIF stores frame durations in
      1/100 s, so the rate read back is rounded (8 fps -> 8.33 fps).
    * ``.npy``: the frames array (lossless); ``.npz``: ``frames`` and ``fps`` (lossless).
    * no suffix: a folder of ``frame_00000.png``, ... (lossless).

    Returns the path written. Creates parent folders.
    """
    p = Path(path).expanduser()
    a = _to_rgb(np.asarray(frames), "write_video.frames")
    if a.shape[0] < 1:
        raise DataError("write_video.frames: no frames to write")
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise DataError(f"write_video.fps: expected a positive frame rate in Hz, got {fps}")
    suffix = p.suffix.lower()
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(p, a)
    elif suffix == ".npz":
        with open(p, "wb") as f:  # np.savez would append .npz to an odd name
            np.savez_compressed(f, frames=a, fps=np.float64(fps))
    elif suffix == ".gif":
        Image = _require("PIL.Image", "pillow", f"writing {p}")
        ims = [Image.fromarray(f) for f in a]
        ims[0].save(p, save_all=True, append_images=ims[1:], duration=1000.0 / fps, loop=0)
    elif suffix in MOVIE_SUFFIXES:
        imageio = _require("imageio.v2", "imageio imageio-ffmpeg", f"writing {p}")
        _require("imageio_ffmpeg", "imageio-ffmpeg", f"writing {p}")
        even = a.shape[1] % 2 == 0 and a.shape[2] % 2 == 0
        codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
        writer = imageio.get_writer(str(p), format="FFMPEG", mode="I", fps=fps, codec=codec,
                                    quality=None, pixelformat="yuv420p" if even else "yuv444p",
                                    macro_block_size=1, output_params=["-crf", "12"],
                                    ffmpeg_log_level="error")
        try:
            for f in a:
                writer.append_data(f)
        finally:
            writer.close()
    elif suffix == "":
        Image = _require("PIL.Image", "pillow", f"writing {p}")
        p.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(a):
            Image.fromarray(f).save(p / f"frame_{i:05d}.png")
    else:
        raise DataError(f"write_video.path: unsupported suffix {suffix!r} in {p}; use .mp4, .gif, "
                        ".npy, .npz, or a folder name without suffix for PNG frames")
    return p


def subsample_indices(total: int, num: int) -> np.ndarray:
    """``num`` frame indices spread uniformly over ``total`` frames, first and last included
    (all ``total`` indices when ``num >= total``)."""
    if num >= total:
        return np.arange(total)
    return np.floor(np.linspace(0.0, total - 1.0, num) + 0.5).astype(np.int64)


# --------------------------------------------------------------------------- component


class FileVideoModel:
    """Plays back a video file as the "generated" video; ignores the prompt.

    ``generate(image, prompt, num_frames=...)`` returns the file's frames, uniformly subsampled
    to ``num_frames`` when the file holds more (first and last frames kept; ``fps`` scaled so the
    duration is unchanged), all of them when it holds fewer or as many. The frames are not
    resized to ``image``: the file should be recorded from the observation's camera.
    """

    name = "file"
    kind = "video"
    capabilities = frozenset({"stand_in", "deterministic"})
    Options = FileVideoOptions
    extra = "io"  # npy/npz need nothing; mp4/gif/PNG say to install the io extra
    description = "plays back a video file (mp4/gif/PNG folder/npy) as the generated video"
    verified = "round trips of mp4 (tolerance), gif, PNG folder and npy in tests"

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataError(f"video file not found: {self.path} (video.options.path); give an existing "
                            ".mp4, .gif, .npy/.npz or a folder of PNG/JPG frames")
        self.fps_override = fps
        self._cache: tuple[np.ndarray, float] | None = None

    def _load(self) -> tuple[np.ndarray, float]:
        if self._cache is None:
            frames, fps = read_video(self.path)
            frames.flags.writeable = False
            self._cache = (frames, float(self.fps_override or fps or DEFAULT_FPS))
        return self._cache

    def generate(self, image: np.ndarray, prompt: str, *, last_image: np.ndarray | None = None,
                 num_frames: int = 49, seed: int | None = None) -> Video:
        check_image(image, "image")
        if last_image is not None:
            raise ValueError("last_image: the 'file' video model has no end_frame_conditioning "
                             "capability (it plays back a file); pass last_image=None or choose a "
                             "video model that declares end_frame_conditioning")
        if not isinstance(prompt, str):
            raise ValueError(f"prompt: expected a string, got {type(prompt).__name__}")
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
            raise ValueError(f"num_frames: expected an integer >= 2, got {num_frames!r}")
        frames, fps = self._load()
        total = frames.shape[0]
        idx = subsample_indices(total, int(num_frames))
        if len(idx) < total:
            fps = fps * (len(idx) - 1) / (total - 1)  # same duration with fewer frames
        return Video(frames=np.array(frames[idx]), fps=fps, model=f"file:{self.path}", prompt=prompt,
                     seed=None if seed is None else int(seed))


def _factory(options: FileVideoOptions, ctx: Any = None) -> FileVideoModel:
    if options is None:
        raise DataError("video.options.path: the 'file' video model needs a path to play back")
    return FileVideoModel(options.path, fps=options.fps)


@hookimpl
def d2f_register(register):
    register(Manifest.of(FileVideoModel, factory=_factory))
