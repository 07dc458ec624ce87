"""A rendered open hand (palm towards the camera, fingers up) with a known thumb tip, for the
hand-detector tests. MediaPipe Hands finds it on a light background; the HaMeR stand-in finds
its blue thumb nail marker."""

from __future__ import annotations

import math

import numpy as np

SKIN = (222, 170, 135)
BACKGROUND = (235, 235, 235)
MARKER = (40, 80, 220)


def render_hand(width: int = 320, height: int = 256, cx: float = 160.0, cy: float = 160.0, scale: float = 1.0,
                left: bool = False, marker: bool = False, skin=SKIN, background=BACKGROUND
                ) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 H x W x 3 RGB image, thumb tip (x, y) pixels). ``left`` mirrors a right hand about
    ``cx``; ``marker`` paints a blue nail on the thumb tip (centred on the returned point)."""
    from PIL import Image, ImageDraw, ImageFilter

    img = Image.new("RGB", (width, height), background)
    d = ImageDraw.Draw(img)
    sign = -1.0 if left else 1.0

    def P(x: float, y: float) -> tuple[float, float]:
        return (cx + sign * scale * x, cy + scale * y)

    def capsule(points: list[tuple[float, float]], w: float, colour) -> None:
        for p0, p1 in zip(points[:-1], points[1:]):
            d.line([P(*p0), P(*p1)], fill=colour, width=max(1, int(round(w * scale))))
        for p in points:
            q, r = P(*p), w * scale / 2
            d.ellipse([q[0] - r, q[1] - r, q[0] + r, q[1] + r], fill=colour)

    d.polygon([P(-45, -40), P(45, -45), P(50, 30), P(30, 60), P(-30, 60), P(-50, 25)], fill=skin)
    d.polygon([P(-30, 55), P(30, 55), P(28, 110), P(-28, 110)], fill=skin)
    fingers = [((-36, -40), -12, (38, 26, 22), 19), ((-12, -46), -3, (42, 30, 24), 20),
               ((12, -44), 6, (40, 28, 22), 19), ((34, -36), 16, (30, 22, 20), 16)]
    shade = tuple(int(c * 0.8) for c in skin)
    for (bx, by), ang, segs, w in fingers:
        a = math.radians(ang)
        pts = [(bx, by)]
        for L in segs:
            pts.append((pts[-1][0] + L * math.sin(a), pts[-1][1] - L * math.cos(a)))
        capsule(pts, w, skin)
        for x, y in pts[1:-1]:  # knuckle creases
            dx, dy = 0.35 * w * math.cos(a), 0.35 * w * math.sin(a)
            d.line([P(x - dx, y - dy), P(x + dx, y + dy)], fill=shade, width=max(1, int(2 * scale)))
    thumb = [(-40, 30), (-72, 5), (-95, -18), (-110, -40)]
    capsule(thumb, 22, skin)
    tip = np.array(P(*thumb[-1]), np.float64)
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    if marker:
        d = ImageDraw.Draw(img)
        r = 6 * scale
        d.ellipse([tip[0] - r, tip[1] - r, tip[0] + r, tip[1] + r], fill=MARKER)
    return np.asarray(img, dtype=np.uint8).copy(), tip
