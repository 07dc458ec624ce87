"""Stand-in of SpaTrackerV2's ``Predictor`` (documented by inference.py). See the README."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import torch


def _t(x):
    if x is None or isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(np.asarray(x)).float()


class Predictor(torch.nn.Module):
    def __init__(self, args=None) -> None:
        super().__init__()
        self.spatrack = SimpleNamespace(track_num=756)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        path = str(pretrained_model_name_or_path)
        if not os.path.exists(path):
            raise NotImplementedError("Remote download not implemented yet. Use a local path.")
        return cls()

    def forward(self, video, depth=None, unc_metric=None, intrs=None, extrs=None, queries=None, queries_3d=None,
                iters_track=4, full_point=False, fps=30, track2d_gt=None, fixed_cam=False, query_no_BA=False,
                stage=0, support_frame=0, replace_ratio=0.6):
        video = _t(video)                      # T 3 h w, 0-255 RGB
        T, C, h, w = video.shape
        depth, unc_metric, intrs, extrs = _t(depth), _t(unc_metric), _t(intrs), _t(extrs)
        r, g, b = (video / 255.0).unbind(1)
        own = 1.0 + r + 0.5 * g + 0.25 * b     # the predictor's own estimate
        z = own if depth is None else 0.5 * (depth + own)
        K = intrs if intrs is not None else torch.eye(3).expand(T, 3, 3)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        X = (xs - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None] * z
        Y = (ys - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None] * z
        point_map = torch.stack([X, Y, z], 1)  # T 3 h w
        if unc_metric is None:
            conf_depth = torch.full((T, h, w), 0.9)
        else:
            conf_depth = torch.where(unc_metric > 0, torch.tensor(0.9), torch.tensor(0.1))
        q = _t(queries)
        N = 0 if q is None else q.shape[0]
        track2d = torch.zeros(T, N, 3)
        if N:
            track2d[:, :, :2] = q[None, :, 1:3]
        c2w = torch.linalg.inv(extrs) if extrs is not None else torch.eye(4).expand(T, 4, 4).clone()
        return (c2w, K, point_map, conf_depth, torch.zeros(T, N, 3), track2d, torch.ones(T, N, dtype=torch.bool),
                torch.ones(T, N), video)
