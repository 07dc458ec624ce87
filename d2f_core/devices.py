"""Where a torch adapter runs and in which precision: the one shared choice (``device: auto``,
``dtype: auto``), and what a real-model plugin needs (``d2f doctor``, docs/real_models.md).

Rules (:func:`choose`):

* ``device: auto`` -> ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; the choice is
  logged once per component (logger ``d2f.devices``). An explicit device (``cpu``, ``cuda:1``) is
  kept; asking for CUDA on a machine without it is an error naming the fix.
* ``dtype: auto`` -> on CUDA the precision the upstream release runs in (``cuda_dtype``: bfloat16
  for Wan 2.1, SpatialTrackerV2 and Grounded-SAM-2; float32 for CoTracker3 and HaMeR), with
  bfloat16 falling back to float16 on GPUs without bf16 support (before Ampere); float32 on the
  CPU (bf16 matmuls on a CPU are slow or unsupported and the upstream never runs them there).
  An explicit dtype is kept (float16 on the CPU is refused: most CPU kernels lack it).

Light: torch is imported inside the functions only, so ``d2f_core`` stays import-light.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

__all__ = ["DeviceChoice", "Needs", "DTypeName", "choose", "resolve_device", "resolve_dtype", "cuda_available",
           "free_gpu_memory", "autocast", "DEVICE_HELP", "DTYPE_HELP"]

log = logging.getLogger("d2f.devices")

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
DEVICE_HELP = "torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:1, ..."
DTYPE_HELP = ("auto (the upstream's precision on CUDA, float32 on the CPU), float32, bfloat16 or float16")

_LOGGED: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class DeviceChoice:
    """Where a component runs: ``device`` (a torch device string), ``dtype`` (a torch dtype name)
    and one line saying why."""

    device: str
    dtype: str
    reason: str

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def device_type(self) -> str:
        return self.device.split(":", 1)[0]

    def torch_dtype(self) -> Any:
        import torch
        return getattr(torch, self.dtype)

    def describe(self) -> str:
        return f"{self.device} {self.dtype} ({self.reason})"


@dataclass(frozen=True)
class Needs:
    """What a real-model plugin needs, declared on its options model as ``needs: ClassVar[Needs]``
    (read by ``d2f doctor``).

    ``weights``: option names holding local weight paths (file or folder); ``cuda_dtype``: the
    precision ``dtype: auto`` gives on CUDA (the upstream's); ``gpu_gb``: peak GPU
    memory at the plugin's defaults, GiB (0 = runs without a GPU); ``gpu_gb_min``: with the memory
    options it offers (offload, tiling, chunking), GiB; ``disk_gb``: download size of the weights,
    GB; ``cuda_only``: cannot run on the CPU at all; ``source``: where the weights come from."""

    weights: tuple[str, ...] = ()
    cuda_dtype: str = "float32"
    gpu_gb: float = 0.0
    gpu_gb_min: float | None = None
    disk_gb: float = 0.0
    cuda_only: bool = False
    source: str = ""
    memory_options: str = ""
    default_weights: Callable[[Any], dict[str, Any]] | None = field(default=None, compare=False)
    """Optional ``(options) -> {option: Path | None}``: where a weight option left unset is looked
    for (e.g. the torch hub cache); a path that does not exist means missing."""


# --------------------------------------------------------------------------- torch probes (mockable)


def _torch() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def cuda_available() -> bool:
    """``torch.cuda.is_available()``; False without torch."""
    torch = _torch()
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA install is "no CUDA"
        return False


def _bf16_ok(device: str) -> bool:
    torch = _torch()
    try:
        return bool(torch.cuda.is_bf16_supported()) if torch is not None else False
    except Exception:  # noqa: BLE001
        return False


def free_gpu_memory(device: str = "cuda") -> tuple[float, float] | None:
    """(free, total) GiB of a CUDA device, or None without CUDA."""
    if not cuda_available():
        return None
    torch = _torch()
    try:
        free, total = torch.cuda.mem_get_info(torch.device(device if device.startswith("cuda") else "cuda"))
    except Exception:  # noqa: BLE001
        return None
    return free / 2**30, total / 2**30


# --------------------------------------------------------------------------- the choice


def resolve_device(device: str = "auto", *, component: str = "") -> tuple[str, str]:
    """(device, reason). ``auto`` -> cuda / cpu; CUDA asked on a machine without it -> ValueError."""
    d = (device or "auto").strip().lower()
    who = f"{component}: " if component else ""
    if d == "auto":
        if cuda_available():
            return "cuda", "device auto: CUDA available"
        return "cpu", "device auto: no CUDA" + ("" if _torch() is not None else " (torch not installed)")
    if d.startswith("cuda") and not cuda_available():
        raise ValueError(f"{who}device {device!r}: CUDA is not available here (torch.cuda.is_available() is "
                         "False); set the option to auto or cpu, or install a CUDA build of torch")
    return d, f"device {d} (set in the config)"


def resolve_dtype(dtype: str, device: str, *, cuda_dtype: str = "bfloat16", component: str = "") -> tuple[str, str]:
    """(dtype name, reason) for ``dtype`` on ``device`` (see the module docstring)."""
    t = (dtype or "auto").strip().lower()
    who = f"{component}: " if component else ""
    cuda = device.startswith("cuda")
    if t == "auto":
        if not cuda:
            return "float32", "dtype auto: float32 on the CPU"
        if cuda_dtype == "bfloat16" and not _bf16_ok(device):
            return "float16", "dtype auto: the upstream's bfloat16 is not supported by this GPU, float16 instead"
        return cuda_dtype, f"dtype auto: {cuda_dtype} on CUDA, as upstream"
    if t not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"{who}dtype {dtype!r}: expected auto, float32, bfloat16 or float16")
    if t == "float16" and not cuda:
        raise ValueError(f"{who}dtype float16 on {device}: most CPU kernels have no float16; use float32 "
                         "(or auto)")
    return t, f"dtype {t} (set in the config)"


def choose(device: str = "auto", dtype: str = "auto", *, component: str, cuda_dtype: str = "bfloat16",
           logger: logging.Logger | None = None) -> DeviceChoice:
    """The device and dtype ``component`` runs with, logged once per (component, device, dtype)."""
    dev, why_dev = resolve_device(device, component=component)
    dt, why_dt = resolve_dtype(dtype, dev, cuda_dtype=cuda_dtype, component=component)
    choice = DeviceChoice(dev, dt, f"{why_dev}; {why_dt}")
    key = (component, dev, dt)
    if key not in _LOGGED:
        _LOGGED.add(key)
        (logger or log).info("%s runs on %s", component, choice.describe())
    return choice


@contextlib.contextmanager
def autocast(choice: DeviceChoice) -> Iterator[None]:
    """``torch.autocast`` in ``choice.dtype`` (a no-op for float32): how an adapter whose weights
    stay float32 runs its forward passes in the upstream's reduced precision."""
    if choice.dtype == "float32":
        yield
        return
    import torch

    with torch.autocast(device_type=choice.device_type, dtype=choice.torch_dtype()):
        yield
