"""Checks every component kind shares, and the helpers the kind modules build on.

Helpers turn a plugin's exception into a :class:`CheckFailed` naming the call and the
exception's type and message (our validating types already say how to fix the problem), and
compare inputs before/after a call to catch mutation.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from d2f_core.protocols import CAPABILITIES, PROTOCOLS, REQUIRED_METHODS
from d2f_core.types import Video

from ..results import CheckFailed, CheckSkipped
from ..scenes import CheckEnv, probe_image, probe_video

__all__ = [
    "Check", "call", "blocked_by", "expect_value_error", "caps", "has_cap", "require_cap", "skip_if_cap",
    "arrays_equal", "values_equal", "Snapshot", "writable_video", "cached", "as_numpy",
    "check_declares_name_and_capabilities", "check_has_protocol_methods", "check_model_input_convention",
    "common_checks", "model_input_check", "MODEL_INPUT_PROBE",
]


@dataclass(frozen=True)
class Check:
    """One named contract check.

    Fields:
        name: public name (tests and ``d2f check --only`` use it), e.g. ``"tracker_known_motion"``.
        kind: the kind it belongs to (``"common"`` for checks every kind shares).
        func: ``func(component, env) -> None``; raises CheckFailed / CheckSkipped.
        doc: one line saying what it checks.
    """

    name: str
    kind: str
    func: Callable[[Any, CheckEnv], None]
    doc: str

    def __call__(self, component: Any, env: CheckEnv) -> None:
        self.func(component, env)


# --------------------------------------------------------------------------- helpers


def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the plugin; any exception becomes CheckFailed("<what> raised <Type>: <message>")."""
    try:
        return fn(*args, **kwargs)
    except (CheckFailed, CheckSkipped):
        raise
    except Exception as e:  # noqa: BLE001 - every plugin error is a finding
        hint = ""
        if isinstance(e, ValueError) and "read-only" in str(e):
            hint = ("; the component writes into its input, which is read-only: work on a copy "
                    "(x = np.array(x)) and never modify arguments in place")
        raise CheckFailed(f"{what} raised {type(e).__name__}: {e}{hint}") from e


def expect_value_error(what: str, fn: Callable[..., Any], *args: Any, arg: str, given: str,
                       fix: str, **kwargs: Any) -> None:
    """The call must raise ValueError whose message names ``arg``.

    ``given`` describes the malformed input ("a float32 0-1 image"); ``fix`` says how the
    component should validate ("call d2f_core.validate.check_image(image, 'image') first").
    """
    try:
        fn(*args, **kwargs)
    except ValueError as e:
        if arg.lower() not in str(e).lower():
            raise CheckFailed(
                f"{what} with {given} raised ValueError but its message does not name the argument "
                f"{arg!r}: {str(e)!r}; start the message with the argument name and say how to fix "
                f"it, e.g. \"{arg}: expected ...; convert with ...\"") from None
        return
    except (CheckFailed, CheckSkipped):
        raise
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"{what} with {given} raised {type(e).__name__}: {e} instead of a ValueError "
                          f"naming {arg!r}; {fix}") from None
    raise CheckFailed(f"{what} accepted {given}; it must raise ValueError naming {arg!r} so the caller "
                      f"learns what to pass: {fix}")


def blocked_by(check: str, what: str) -> None:
    """Skip a check whose input is another check's failure (so only the root cause fails)."""
    raise CheckSkipped(f"cannot check: {what}; fix {check} first")


def caps(component: Any) -> frozenset[str]:
    c = getattr(component, "capabilities", frozenset())
    try:
        return frozenset(c)
    except TypeError:
        return frozenset()


def has_cap(component: Any, cap: str) -> bool:
    return cap in caps(component)


def require_cap(component: Any, cap: str, why: str = "") -> None:
    if not has_cap(component, cap):
        raise CheckSkipped(f"capability {cap!r} is not declared" + (f" ({why})" if why else ""))


def skip_if_cap(component: Any, cap: str, why: str) -> None:
    if has_cap(component, cap):
        raise CheckSkipped(f"capability {cap!r} is declared: {why}")


def as_numpy(x: Any) -> np.ndarray:
    """A numpy view of ``x`` (numpy array, torch/jax tensor, nested lists)."""
    for attr in ("detach", "cpu"):
        if hasattr(x, attr) and callable(getattr(x, attr)):
            x = getattr(x, attr)()
    if hasattr(x, "numpy") and callable(x.numpy) and not isinstance(x, np.ndarray):
        x = x.numpy()
    return np.asarray(x)


def require_same(a: Any, b: Any, inputs: str, field: str, *, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Fail unless two outputs of one call on the same ``inputs`` agree (the determinism checks)."""
    ok, why = arrays_equal(a, b, rtol=rtol, atol=atol)
    if not ok:
        raise CheckFailed(f"the same {inputs} gave different {field} ({why}); seed or remove random sources "
                          "and put the model in eval mode (no dropout)")


def arrays_equal(a: Any, b: Any, *, rtol: float = 0.0, atol: float = 0.0) -> tuple[bool, str]:
    """(equal, why not). NaN == NaN. Shapes and dtypes must match."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False, f"shapes differ ({a.shape} vs {b.shape})"
    if a.dtype != b.dtype and not (np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number)):
        return False, f"dtypes differ ({a.dtype} vs {b.dtype})"
    if a.size == 0:
        return True, ""
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
        diff = np.asarray(a != b)
        return (not diff.any()), f"{int(diff.sum())} of {a.size} values differ"
    af, bf = a.astype(np.float64), b.astype(np.float64)
    same_nan = np.isnan(af) == np.isnan(bf)
    ok = np.isclose(af, bf, rtol=rtol, atol=atol, equal_nan=True) & same_nan
    if ok.all():
        return True, ""
    with np.errstate(invalid="ignore"):
        d = np.nanmax(np.abs(af - bf)) if np.any(np.isfinite(af - bf)) else float("nan")
    return False, f"{int((~ok).sum())} of {a.size} values differ (max abs difference {d:.3g})"


def values_equal(a: Any, b: Any) -> tuple[bool, str]:
    """Deep equality of plain data (mappings, sequences, arrays, numbers), NaN == NaN."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return False, f"keys differ ({sorted(map(str, a))} vs {sorted(map(str, b))})"
        for k in a:
            ok, why = values_equal(a[k], b[k])
            if not ok:
                return False, f"[{k!r}] {why}"
        return True, ""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return False, f"lengths differ ({len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            ok, why = values_equal(x, y)
            if not ok:
                return False, f"[{i}] {why}"
        return True, ""
    if isinstance(a, (np.ndarray, np.generic, int, float, bool)) or isinstance(b, np.ndarray):
        try:
            return arrays_equal(np.asarray(a), np.asarray(b))
        except Exception:  # noqa: BLE001
            pass
    try:
        return bool(a == b), ("" if a == b else f"{a!r} != {b!r}")
    except Exception:  # noqa: BLE001
        return False, f"cannot compare {type(a).__name__} values"


class Snapshot:
    """Copies of the arrays handed to a component, to prove after the call that none changed."""

    def __init__(self, **arrays: Any) -> None:
        self.live = arrays
        self.saved = {k: (np.array(v, copy=True) if v is not None else None) for k, v in arrays.items()}

    def assert_unchanged(self, what: str) -> None:
        for k, live in self.live.items():
            if live is None:
                continue
            ok, why = arrays_equal(self.saved[k], live)
            if not ok:
                raise CheckFailed(f"{what} modified its input {k!r} in place ({why}); never write into "
                                  f"arguments: work on a copy (x = np.array({k})) or use out-of-place "
                                  f"operations")


def writable_video(video: Video) -> tuple[Video, np.ndarray]:
    """A Video over a fresh *writable* copy of ``video``'s frames, and that copy (for Snapshot)."""
    frames = np.array(video.frames, copy=True)
    return Video(frames=frames, fps=video.fps, model=video.model, prompt=video.prompt, seed=video.seed), frames


def cached(env: CheckEnv, component: Any, key: str, fn: Callable[[], Any]) -> Any:
    """Memoise ``fn()`` (a plugin call on fixed inputs) per component; a failure is memoised too."""
    k = (id(component), key)
    if k not in env.cache:
        try:
            env.cache[k] = ("ok", fn())
        except CheckFailed as e:
            env.cache[k] = ("failed", str(e))
    status, value = env.cache[k]
    if status == "failed":
        raise CheckFailed(value)
    return value


# --------------------------------------------------------------------------- common checks


def _known_caps(kind: str) -> set[str]:
    return set(CAPABILITIES["*"]) | set(CAPABILITIES.get(kind, {}))


def check_declares_name_and_capabilities(component: Any, env: CheckEnv, kind: str) -> None:
    name = getattr(component, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise CheckFailed(f"component.name is {name!r}; set a class attribute `name = \"my-plugin\"` "
                          "(the plugin's registered name)")
    c = getattr(component, "capabilities", None)
    if not isinstance(c, frozenset):
        raise CheckFailed(f"component.capabilities is {type(c).__name__} {c!r}; declare a frozenset of "
                          "strings, e.g. `capabilities = frozenset({\"deterministic\"})`")
    bad = sorted(repr(x) for x in c if not isinstance(x, str))
    if bad:
        raise CheckFailed(f"component.capabilities holds non-strings {bad}; use capability names "
                          f"from d2f_core.protocols.CAPABILITIES")
    unknown = sorted(set(c) - _known_caps(kind))
    if unknown:
        raise CheckFailed(f"capabilities {unknown} are not known for kind {kind!r}; remove them or use "
                          f"one of {sorted(_known_caps(kind))} (d2f_core.protocols.CAPABILITIES)")


def _protocol_attributes(kind: str) -> list[str]:
    """Data attributes a protocol declares (annotations of the protocol classes, not Component)."""
    out: list[str] = []
    for klass in PROTOCOLS[kind].__mro__:
        if klass.__module__ != "d2f_core.protocols" or klass.__name__ == "Component":
            continue
        for a in getattr(klass, "__annotations__", {}):
            if a not in out:
                out.append(a)
    return out


def _keyword_params(fn: Any) -> tuple[list[str], int]:
    """Keyword-only parameter names and positional parameter count of a protocol method."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    kw = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    pos = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                           inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    return kw, len(pos)


def check_has_protocol_methods(component: Any, env: CheckEnv, kind: str) -> None:
    proto = PROTOCOLS[kind]
    missing = [m for m in REQUIRED_METHODS[kind] if not callable(getattr(component, m, None))]
    if missing:
        raise CheckFailed(f"missing method(s) {', '.join(m + '()' for m in missing)}; a {kind} component "
                          f"must implement d2f_core.protocols.{proto.__name__}")
    absent = [a for a in _protocol_attributes(kind) if not hasattr(component, a)]
    if absent:
        raise CheckFailed(f"missing attribute(s) {', '.join(absent)}; d2f_core.protocols.{proto.__name__} "
                          f"declares them (see its docstrings for types and units)")
    for m in REQUIRED_METHODS[kind]:
        try:
            sig = inspect.signature(getattr(component, m))
        except (TypeError, ValueError):
            continue  # builtins / C extensions: nothing to inspect
        params = list(sig.parameters.values())
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        var_pos = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
        names = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        kw, n_pos = _keyword_params(getattr(proto, m))
        lacking = [k for k in kw if k not in names] if not var_kw else []
        if lacking:
            raise CheckFailed(f"{m}() does not accept keyword argument(s) {', '.join(lacking)}; the "
                              f"signature must match d2f_core.protocols.{proto.__name__}.{m}"
                              f"{inspect.signature(getattr(proto, m))}")
        positional = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                      inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        if len(positional) < n_pos and not var_pos:
            raise CheckFailed(f"{m}() takes {len(positional)} positional argument(s), the protocol passes "
                              f"{n_pos}: match d2f_core.protocols.{proto.__name__}.{m}"
                              f"{inspect.signature(getattr(proto, m))}")


# --------------------------------------------------------------------------- model input convention

_PROBE_RGB = (200, 100, 20)
_PROBE_T, _PROBE_H, _PROBE_W = 5, 40, 56

MODEL_INPUT_PROBE: dict[str, str] = {"video": "image", "segmenter": "image", "depth": "video",
                                     "tracker": "video"}
"""What ``model_input(x)`` receives per kind: an RGB uint8 H x W x 3 image (the conditioning image
of a video model, the image of a segmenter) or a :class:`d2f_core.Video`."""


def _range_name(lo: float, hi: float) -> str:
    tol = 0.01 * max(abs(hi - lo), 1e-12)

    def fmt(v: float) -> str:
        return str(int(round(v))) if abs(v - round(v)) <= tol else f"{v:.3g}"
    a, b = fmt(lo), fmt(hi)
    return f"{a} to {b}" if a.startswith("-") or b.startswith("-") else f"{a}-{b}"


def _fit_affine(p: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y = a + b p; returns (a, b, rms residual relative to the spread of y)."""
    A = np.stack([np.ones_like(p), p], -1)
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    res = y - (a + b * p)
    scale = max(float(np.ptp(y)), 1e-12)
    return float(a), float(b), float(np.sqrt(np.mean(res ** 2)) / scale)


def check_model_input_convention(component: Any, env: CheckEnv, kind: str) -> None:
    require_cap(component, "model_input", "nothing to check: the adapter does not expose its model input")
    spec = getattr(component, "model_input_spec", None)
    fn = getattr(component, "model_input", None)
    if spec is None or not callable(fn):
        raise CheckFailed("declares capability 'model_input' but lacks "
                          + ("model_input_spec" if spec is None else "a callable model_input(x)")
                          + "; expose `model_input_spec = ModelInputSpec(channel_order=..., value_range=..., "
                            "layout=...)` (the upstream model's convention) and `model_input(x)` returning "
                            "the array the model receives")
    order = getattr(spec, "channel_order", None)
    vr = getattr(spec, "value_range", None)
    layout = getattr(spec, "layout", None)
    if order not in ("RGB", "BGR"):
        raise CheckFailed(f"model_input_spec.channel_order is {order!r}; declare 'RGB' or 'BGR' "
                          "(d2f_core.ModelInputSpec)")
    try:
        lo, hi = (float(v) for v in vr)
    except Exception:  # noqa: BLE001
        raise CheckFailed(f"model_input_spec.value_range is {vr!r}; declare (low, high), e.g. (0, 255) or "
                          "(0, 1)") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise CheckFailed(f"model_input_spec.value_range {vr!r} must be finite with low < high")
    if (not isinstance(layout, str) or "C" not in layout or len(set(layout)) != len(layout)):
        raise CheckFailed(f"model_input_spec.layout is {layout!r}; declare the axis names of the array the "
                          "model receives, one letter per axis, with a channel axis 'C' (e.g. 'BTCHW', "
                          "'THWC', 'HWC')")
    probe_kind = MODEL_INPUT_PROBE.get(kind, "image")
    if probe_kind == "image":
        x = probe_image(_PROBE_W, _PROBE_H, _PROBE_RGB)
        what, sizes = "model_input(image)", {"H": _PROBE_H, "W": _PROBE_W, "C": 3}
    else:
        x = probe_video(_PROBE_T, _PROBE_W, _PROBE_H, _PROBE_RGB)
        what, sizes = "model_input(video)", {"T": _PROBE_T, "H": _PROBE_H, "W": _PROBE_W, "C": 3}
    arr = call(what, fn, x)
    try:
        a = as_numpy(arr).astype(np.float64)
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"{what} returned {type(arr).__name__}, which is not array-like ({e}); return the "
                          "array (numpy or tensor) the model receives") from None
    if a.ndim != len(layout):
        raise CheckFailed(f"{what} returned {a.ndim} axes {a.shape} but model_input_spec.layout "
                          f"{layout!r} names {len(layout)}; declare the layout of the array you return")
    for ax, letter in enumerate(layout):
        n = a.shape[ax]
        if letter == "C" and n != 3:
            raise CheckFailed(f"{what}: layout {layout!r} puts channels on axis {ax}, which has size {n} "
                              f"(shape {a.shape}); fix the layout or move channels there "
                              f"(np.moveaxis / tensor.permute)")
        if letter == "T" and "T" in sizes and n != sizes["T"]:
            raise CheckFailed(f"{what}: the T axis ({ax}) has {n} entries for a {sizes['T']}-frame video "
                              f"(shape {a.shape}); check the layout {layout!r}")
        if letter == "B" and n != 1:
            raise CheckFailed(f"{what}: the batch axis B ({ax}) has size {n} for one input (shape {a.shape}); "
                              f"check the layout {layout!r}")
    if "H" in layout and "W" in layout:
        h, w = a.shape[layout.index("H")], a.shape[layout.index("W")]
        if (h, w) == (sizes["W"], sizes["H"]):
            raise CheckFailed(f"{what}: H and W axes are swapped (H axis has {h}, W axis {w} for a "
                              f"{sizes['W']}x{sizes['H']} input); transpose the image axes, not just reshape")
    if not np.all(np.isfinite(a)):
        raise CheckFailed(f"{what} contains NaN or inf for a constant-colour input; normalise without "
                          "dividing by a per-image standard deviation")
    c_ax = layout.index("C")
    med = np.median(np.moveaxis(a, c_ax, -1).reshape(-1, 3), axis=0)  # per-channel value, robust to padding
    p = np.asarray(_PROBE_RGB, np.float64) / 255.0
    fits = {}
    for name, q in (("RGB", p), ("BGR", p[::-1])):
        off, gain, res = _fit_affine(q, med)
        fits[name] = (off, gain, res)
    ok_orders = [n for n, (off, gain, res) in fits.items() if gain > 0 and res < 0.02]
    seen = ", ".join(f"{v:.4g}" for v in med)
    if not ok_orders:
        raise CheckFailed(f"{what}: for an input with R={_PROBE_RGB[0]}, G={_PROBE_RGB[1]}, B={_PROBE_RGB[2]} the "
                          f"channels hold ({seen}), which is no per-pixel affine map of RGB or BGR; feed "
                          f"the model the image's channels scaled to {_range_name(lo, hi)} "
                          f"(no per-channel normalisation the spec does not declare)")
    got = order if order in ok_orders else ok_orders[0]
    if got != order:
        fix = ("do not reverse channels" if order == "RGB" else "reverse channels with x[..., ::-1]")
        raise CheckFailed(f"{what}: model input is {got} but the model expects {order}: {fix} "
                          f"(for R={_PROBE_RGB[0]}, G={_PROBE_RGB[1]}, B={_PROBE_RGB[2]} the channels hold {seen})")
    off, gain, _ = fits[got]
    got_lo, got_hi = off, off + gain
    span = hi - lo
    if abs(got_lo - lo) > 0.02 * span or abs(got_hi - hi) > 0.02 * span:
        expect = lo + p * span if got == "RGB" else lo + p[::-1] * span
        fix = _range_fix(got_lo, got_hi, lo, hi)
        raise CheckFailed(f"{what}: values are in {_range_name(got_lo, got_hi)} but the model expects "
                          f"{_range_name(lo, hi)}: {fix} (channels hold ({seen}), expected "
                          f"({', '.join(f'{v:.4g}' for v in expect)}))")


def _range_fix(got_lo: float, got_hi: float, lo: float, hi: float) -> str:
    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 0.02 * max(abs(b), 1.0)

    if near(got_lo, 0) and near(got_hi, 1) and near(lo, 0) and near(hi, 255):
        return "do not divide by 255"
    if near(got_lo, 0) and near(got_hi, 255) and near(lo, 0) and near(hi, 1):
        return "divide by 255"
    if near(lo, -1) and near(hi, 1):
        return "map pixels with x / 127.5 - 1"
    return f"map pixel p in 0-255 to {lo:g} + p / 255 * {hi - lo:g}"


def model_input_check(kind: str) -> Check:
    return Check("model_input_convention", kind,
                 lambda c, env: check_model_input_convention(c, env, kind),
                 "declared model_input: model_input(x) matches model_input_spec (channel order, range, layout)")


def common_checks(kind: str) -> list[Check]:
    return [
        Check("declares_name_and_capabilities", "common",
              lambda c, env: check_declares_name_and_capabilities(c, env, kind),
              "name is a non-empty str; capabilities a frozenset of capability names known for the kind"),
        Check("has_protocol_methods", "common", lambda c, env: check_has_protocol_methods(c, env, kind),
              "the protocol's methods (with its keyword arguments) and attributes exist"),
    ]

