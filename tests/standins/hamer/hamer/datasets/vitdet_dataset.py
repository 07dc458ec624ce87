"""Stand-in of ``ViTDetDataset`` (inference crops; BGR image in, normalised RGB crops out)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

DEFAULT_MEAN = 255.0 * np.array([0.485, 0.456, 0.406])
DEFAULT_STD = 255.0 * np.array([0.229, 0.224, 0.225])


def expand_to_aspect_ratio(input_shape, target_aspect_ratio=None):
    """Grow (w, h) to the target w/h aspect ratio (never shrinks)."""
    if target_aspect_ratio is None:
        return input_shape
    w, h = input_shape
    w_t, h_t = target_aspect_ratio
    if h / w < h_t / w_t:
        return np.array([w, max(w * h_t / w_t, h)])
    return np.array([max(h * w_t / h_t, w), h])


class ViTDetDataset(torch.utils.data.Dataset):
    def __init__(self, cfg, img_cv2, boxes, right, rescale_factor=2.5, train=False, **kwargs):
        assert not train
        self.cfg = cfg
        self.img_cv2 = img_cv2
        self.img_size = cfg.MODEL.IMAGE_SIZE
        self.mean = 255.0 * np.array(cfg.MODEL.IMAGE_MEAN)
        self.std = 255.0 * np.array(cfg.MODEL.IMAGE_STD)
        boxes = boxes.astype(np.float32)
        self.center = (boxes[:, 2:4] + boxes[:, 0:2]) / 2.0
        self.scale = rescale_factor * (boxes[:, 2:4] - boxes[:, 0:2]) / 200.0
        self.personid = np.arange(len(boxes), dtype=np.int32)
        self.right = np.asarray(right).astype(np.float32)

    def __len__(self):
        return len(self.personid)

    def __getitem__(self, idx):
        cx, cy = self.center[idx]
        size = float(expand_to_aspect_ratio(self.scale[idx] * 200, self.cfg.MODEL.get("BBOX_SHAPE")).max())
        S = self.img_size
        s = S / size
        flip = self.right[idx] == 0
        # crop pixel (u, v) <- image (x, y): u = (x - cx) * s + S/2 (mirrored for left hands)
        a = -s if flip else s
        M = np.array([[a, 0.0, S / 2 - a * cx], [0.0, s, S / 2 - s * cy]])
        patch = cv2.warpAffine(self.img_cv2, M, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        patch = patch[:, :, ::-1].astype(np.float32)      # BGR -> RGB
        img = ((patch - self.mean) / self.std).transpose(2, 0, 1).astype(np.float32)
        return {"img": img, "personid": int(self.personid[idx]), "box_center": self.center[idx].copy(),
                "box_size": size, "img_size": 1.0 * np.array([self.img_cv2.shape[1], self.img_cv2.shape[0]]),
                "right": self.right[idx].copy()}
