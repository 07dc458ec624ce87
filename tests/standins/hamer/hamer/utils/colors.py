"""Colour rules the stand-in "networks" share (RGB order)."""

import numpy as np

MARKER_RGB = (40, 80, 220)


def skin(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    return (r > 95) & (g > 40) & (b > 20) & (r > g) & (r > b) & (r - np.minimum(g, b) > 15)


def marker(rgb: np.ndarray) -> np.ndarray:
    d = np.abs(rgb.astype(np.int32) - np.array(MARKER_RGB)).sum(-1)
    return d < 60
