"""Stand-in of HaMeR's ``vitpose_model.ViTPoseModel`` (tests only): RGB input, COCO-WholeBody output."""

from __future__ import annotations

import os

import numpy as np

from hamer.utils.colors import marker, skin

ROOT_DIR = "./"
CKPT = os.path.join(ROOT_DIR, "_DATA/vitpose_ckpts/vitpose+_huge/wholebody.pth")


class ViTPoseModel:
    def __init__(self, device):
        if not os.path.isfile(CKPT):  # relative to the checkout, as upstream
            raise FileNotFoundError(f"stand-in ViTPose: {CKPT} not found (run from the HaMeR checkout)")
        self.device = device

    def predict_pose(self, image, det_results, box_score_threshold=0.5):
        rgb = np.asarray(image)
        out = []
        for row in det_results[0]:
            x0, y0, x1, y1, score = row
            kp = np.zeros((133, 3), np.float32)
            sub = rgb[int(y0):int(y1) + 1, int(x0):int(x1) + 1]
            hand = skin(sub) | marker(sub)
            mk = marker(sub)
            if hand.sum() >= 20 and mk.sum() > 0:
                ys, xs = np.nonzero(hand)
                cx = xs.mean()
                right = np.nonzero(mk)[1].mean() < cx
                pts = np.stack([xs, ys], -1)[np.linspace(0, len(xs) - 1, 21).astype(int)] + [x0, y0]
                rows = slice(-21, None) if right else slice(-42, -21)
                kp[rows, :2] = pts
                kp[rows, 2] = 0.9
            out.append({"bbox": np.array(row, np.float32), "keypoints": kp})
        return out
