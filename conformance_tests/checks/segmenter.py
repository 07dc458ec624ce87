"""Checks of segmenters (d2f_core.protocols.Segmenter)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..results import CheckFailed
from ..scenes import CheckEnv
from .common import (Check, require_same, blocked_by, cached, call, common_checks, expect_value_error,
                     has_cap, model_input_check, skip_if_cap, Snapshot)


def _image(env: CheckEnv) -> np.ndarray:
    return np.array(env.scene.video.frames[0], copy=True)


def _text(env: CheckEnv) -> str:
    return env.scene.task.object


def _segment(component: Any, env: CheckEnv, **kw: Any) -> Any:
    return call("segment(image, text)", component.segment, _image(env), _text(env), **kw)


def _canonical(component: Any, env: CheckEnv) -> Any:
    return cached(env, component, "segmenter.segment", lambda: _segment(component, env))


def _prompt_points(env: CheckEnv) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
    """A positive point at the box's centre and a negative one on the table far from it."""
    m = env.scene.mask
    ys, xs = np.nonzero(m)
    cx, cy = int(round(xs.mean())), int(round(ys.mean()))
    if not m[cy, cx]:  # centre off the mask (not for a box, but be safe): nearest mask pixel
        i = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
        cx, cy = int(xs[i]), int(ys[i])
    H, W = m.shape
    yy, xx = np.mgrid[0:H, 0:W]
    far = np.where(~m, (xx - cx) ** 2 + (yy - cy) ** 2, -1)
    ny, nx = np.unravel_index(int(np.argmax(far)), far.shape)
    points = np.array([[cx, cy], [nx, ny]], np.float32)
    labels = np.array([1, 0], np.int64)
    return points, labels, (cx, cy), (int(nx), int(ny))


def check_segment_output_types(component: Any, env: CheckEnv) -> None:
    out = _canonical(component, env)
    H, W = env.scene.mask.shape
    if not isinstance(out, np.ndarray):
        raise CheckFailed(f"segment() returned {type(out).__name__}, expected a numpy bool H x W mask; "
                          "convert with np.asarray(mask, dtype=bool)")
    if out.dtype != np.bool_:
        if np.issubdtype(out.dtype, np.floating):
            fix = "threshold the model's probabilities: mask = prob > 0.5"
        else:
            fix = "return mask.astype(bool) (or mask > 0)"
        raise CheckFailed(f"segment() returned a {out.dtype} mask, expected bool: {fix}")
    if out.shape != (H, W):
        hint = ""
        if out.ndim == 3 and out.shape[-2:] == (H, W):
            hint = "; pick one mask (e.g. the best-scoring) instead of returning a stack"
        elif out.shape == (W, H):
            hint = "; height and width are swapped"
        raise CheckFailed(f"segment() returned shape {out.shape}, expected the image's H x W = {(H, W)}{hint}")


def _mask(component: Any, env: CheckEnv) -> np.ndarray:
    out = _canonical(component, env)
    if not isinstance(out, np.ndarray) or out.dtype != np.bool_ or out.shape != env.scene.mask.shape:
        blocked_by("segment_output_types", "segment() does not return a bool H x W mask")
    return out


def check_segment_rejects_malformed_input(component: Any, env: CheckEnv) -> None:
    img = _image(env)
    text = _text(env)
    fix = "validate it first with d2f_core.validate.check_image(image, 'image')"
    expect_value_error("segment(image, text)", component.segment, img.astype(np.float32) / 255.0, text,
                       arg="image", given="a float32 0-1 image", fix=fix)
    expect_value_error("segment(image, text)", component.segment, np.array(img[..., 0]), text,
                       arg="image", given="a H x W grayscale image", fix=fix)
    if has_cap(component, "point_prompts"):
        points, labels, _, _ = _prompt_points(env)
        expect_value_error("segment(..., points=...)", component.segment, img, text,
                           points=np.zeros((2, 3), np.float32), labels=labels, arg="points",
                           given="points of shape 2 x 3", fix="check points is M x 2 pixels (x, y)")
        expect_value_error("segment(..., labels=...)", component.segment, img, text, points=points,
                           labels=np.array([1], np.int64), arg="labels",
                           given="one label for two points", fix="check len(labels) == len(points)")


def check_segment_no_input_mutation(component: Any, env: CheckEnv) -> None:
    img = _image(env)
    kw: dict[str, Any] = {}
    arrays: dict[str, Any] = {"image": img}
    if has_cap(component, "point_prompts"):
        points, labels, _, _ = _prompt_points(env)
        kw = {"points": points, "labels": labels}
        arrays.update(kw)
    snap = Snapshot(**arrays)
    call("segment(image, text, ...)", component.segment, img, _text(env), **kw)
    snap.assert_unchanged("segment()")


def check_segment_determinism(component: Any, env: CheckEnv) -> None:
    skip_if_cap(component, "api", "a remote service need not be reproducible")
    a = _mask(component, env)
    b = _segment(component, env)
    require_same(a, np.asarray(b), "image and text", "masks")


def check_segment_point_prompts(component: Any, env: CheckEnv) -> None:
    points, labels, pos, neg = _prompt_points(env)
    if not has_cap(component, "point_prompts"):
        expect_value_error("segment(..., points=..., labels=...)", component.segment, _image(env), _text(env),
                           points=points, labels=labels, arg="points",
                           given="points although capability 'point_prompts' is not declared",
                           fix="raise ValueError('points: this segmenter takes no point prompts') or declare "
                               "'point_prompts' and use them")
        return
    out = call("segment(image, text, points=..., labels=...)", component.segment, _image(env), _text(env),
               points=points, labels=labels)
    m = np.asarray(out)
    if m.dtype != np.bool_ or m.shape != env.scene.mask.shape:
        raise CheckFailed(f"segment() with points returned {m.dtype} {m.shape}, expected a bool H x W mask")
    if not m[pos[1], pos[0]]:
        raise CheckFailed(f"the positive point (x={pos[0]}, y={pos[1]}, label 1) lies outside the returned "
                          "mask; points are (x, y) = (column, row) pixels and label 1 means 'include'. Check "
                          "the point order (x, y) vs (row, col) and the label convention")
    if m[neg[1], neg[0]]:
        raise CheckFailed(f"the negative point (x={neg[0]}, y={neg[1]}, label 0) lies inside the returned "
                          "mask; label 0 means 'exclude'")


CHECKS: list[Check] = [
    *common_checks("segmenter"),
    Check("segment_output_types", "segmenter", check_segment_output_types,
          "segment() returns a bool numpy mask of the image's H x W"),
    Check("segment_rejects_malformed_input", "segmenter", check_segment_rejects_malformed_input,
          "float / grayscale images (and malformed points/labels) raise ValueError naming the argument"),
    Check("segment_no_input_mutation", "segmenter", check_segment_no_input_mutation,
          "image, points and labels are unchanged after segment()"),
    Check("segment_determinism", "segmenter", check_segment_determinism,
          "the same image and text give the same mask (skipped for 'api')"),
    Check("segment_point_prompts", "segmenter", check_segment_point_prompts,
          "declared: positive point inside, negative outside the mask; not declared: points raise ValueError"),
    model_input_check("segmenter"),
]
