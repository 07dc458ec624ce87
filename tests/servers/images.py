"""Images and comparisons shared by the video-service adapter tests (Kling, Veo)."""

import numpy as np


def smooth_image(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth colourful uint8 RGB image (so resizing and mp4 coding keep it recognisable)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ph = np.random.default_rng(seed).uniform(0, 6.28, 3)
    img = np.stack([127 + 110 * np.sin(xx / 9 + ph[0]), 127 + 110 * np.sin(yy / 7 + ph[1]),
                    127 + 110 * np.sin((xx + yy) / 11 + ph[2])], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two images, in grey levels."""
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))
