"""Stand-in of ``hamer.models``: ``load_hamer`` and the "network" (tests only)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import torch

from ..configs import CACHE_DIR_HAMER
from ..utils.colors import marker, skin

DEFAULT_CHECKPOINT = f"{CACHE_DIR_HAMER}/hamer_ckpts/checkpoints/hamer.ckpt"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


class _Cfg(SimpleNamespace):
    def get(self, key, default=None):
        return getattr(self, key, default)


def download_models(folder=CACHE_DIR_HAMER):
    raise RuntimeError("the stand-in never downloads")


class HAMER(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def forward(self, batch):
        img = batch["img"]                                    # B 3 256 256, normalised RGB
        B, _, S, _ = img.shape
        rgb = (img.permute(0, 2, 3, 1).cpu().numpy() * STD + MEAN) * 255.0
        rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
        kp = np.zeros((B, 21, 2), np.float32)
        for b in range(B):
            mk = marker(rgb[b])
            hand = skin(rgb[b]) | mk
            if hand.sum() >= 5:
                ys, xs = np.nonzero(hand)
                pts = np.stack([xs, ys], -1)[np.linspace(0, len(xs) - 1, 21).astype(int)].astype(np.float32)
                kp[b] = pts / S - 0.5
            if mk.sum() > 0:
                ys, xs = np.nonzero(mk)
                kp[b, 4] = np.array([xs.mean(), ys.mean()]) / S - 0.5   # thumb tip (OpenPose index 4)
        return {"pred_keypoints_2d": torch.from_numpy(kp), "pred_cam": torch.zeros(B, 3),
                "pred_keypoints_3d": torch.zeros(B, 21, 3), "pred_vertices": torch.zeros(B, 778, 3)}


def load_hamer(checkpoint_path=DEFAULT_CHECKPOINT):
    cfg_path = os.path.join(os.path.dirname(os.path.dirname(checkpoint_path)), "model_config.yaml")
    for p in (checkpoint_path, cfg_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"stand-in HaMeR: {p} not found")
    if not os.path.isfile(os.path.join(CACHE_DIR_HAMER, "data", "mano", "MANO_RIGHT.pkl")):
        raise FileNotFoundError("stand-in HaMeR: _DATA/data/mano/MANO_RIGHT.pkl not found")
    cfg = _Cfg(MODEL=_Cfg(IMAGE_SIZE=256, IMAGE_MEAN=list(MEAN), IMAGE_STD=list(STD), BBOX_SHAPE=[192, 256]),
               EXTRA=_Cfg(FOCAL_LENGTH=5000))
    return HAMER(cfg), cfg
