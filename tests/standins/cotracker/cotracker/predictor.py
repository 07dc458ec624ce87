"""Stand-in of ``cotracker.predictor`` (documented API of facebookresearch/co-tracker).

``CoTrackerPredictor(checkpoint, offline=True, v2=False, window_len=60)`` and
``CoTrackerOnlinePredictor(checkpoint, offline=False, v2=False, window_len=16)``; both resize the
video to the model resolution, scale the queries into it and the tracks back, and return
visibility as bool (offline: probability > 0.9; online: visibility * confidence > 0.6). As upstream,
the online predictor drops the support grid from a step's output only when that call passes
``add_support_grid=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models.standin_model import StandInCoTracker3


def _build(checkpoint: str | None, offline: bool, window_len: int) -> StandInCoTracker3:
    model = StandInCoTracker3(window_len=window_len, offline=offline)
    if checkpoint is not None:
        with open(checkpoint, "rb") as f:
            state = torch.load(f, map_location="cpu")
        if "model" in state:
            state = state["model"]
        model.load_state_dict(state, strict=False)
    return model


def _support_grid(size: int, hw: tuple[int, int]) -> torch.Tensor:
    """(1, size*size, 2) points evenly spread inside the frame (x, y)."""
    H, W = hw
    ys = torch.linspace(H * 0.1, H * 0.9, size)
    xs = torch.linspace(W * 0.1, W * 0.9, size)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)[None]


def _to_model(video: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    B, T, C, H, W = video.shape
    v = F.interpolate(video.reshape(B * T, C, H, W), size=hw, mode="bilinear", align_corners=True)
    return v.reshape(B, T, C, hw[0], hw[1])


def _scale(H: int, W: int, hw: tuple[int, int], inverse: bool = False) -> torch.Tensor:
    s = torch.tensor([(hw[1] - 1) / (W - 1), (hw[0] - 1) / (H - 1)])
    return 1.0 / s if inverse else s


class CoTrackerPredictor(torch.nn.Module):
    def __init__(self, checkpoint="./checkpoints/scaled_offline.pth", offline=True, v2=False, window_len=60):
        super().__init__()
        if v2:
            raise NotImplementedError("the stand-in implements CoTracker3 only")
        self.support_grid_size = 3
        self.model = _build(checkpoint, offline=offline, window_len=window_len)
        self.interp_shape = self.model.model_resolution
        self.model.eval()

    @torch.no_grad()
    def forward(self, video, queries=None, segm_mask=None, grid_size=0, grid_query_frame=0,
                backward_tracking=False):
        if queries is None:
            raise NotImplementedError("the stand-in tracks given queries only")
        B, T, C, H, W = video.shape
        hw = self.interp_shape
        v = _to_model(video, hw)
        q = queries.clone().float()
        q[:, :, 1:] *= _scale(H, W, hw)
        N = q.shape[1]
        grid = _support_grid(self.support_grid_size, hw)
        q_all = torch.cat([q, torch.cat([torch.zeros_like(grid[..., :1]), grid], -1).repeat(B, 1, 1)], 1)
        tracks, vis, *_ = self.model(v, q_all, iters=6)
        if backward_tracking:
            inv_q = q_all.clone()
            inv_q[:, :, 0] = T - 1 - inv_q[:, :, 0]
            inv_tracks, inv_vis, *_ = self.model(v.flip(1), inv_q, iters=6)
            inv_tracks, inv_vis = inv_tracks.flip(1), inv_vis.flip(1)
            before = torch.arange(T)[None, :, None] < q_all[:, None, :, 0]
            tracks = torch.where(before[..., None], inv_tracks, tracks)
            vis = torch.where(before, inv_vis, vis)
        tracks, vis = tracks[:, :, :N], vis[:, :, :N] > 0.9
        for b in range(B):
            t_q = q[b, :, 0].long()
            tracks[b, t_q, torch.arange(N)] = q[b, :, 1:]
            vis[b, t_q, torch.arange(N)] = True
        return tracks * _scale(H, W, hw, inverse=True), vis


class CoTrackerOnlinePredictor(torch.nn.Module):
    def __init__(self, checkpoint="./checkpoints/scaled_online.pth", offline=False, v2=False, window_len=16):
        super().__init__()
        if v2:
            raise NotImplementedError("the stand-in implements CoTracker3 only")
        self.support_grid_size = 3
        self.model = _build(checkpoint, offline=False, window_len=window_len)
        self.interp_shape = self.model.model_resolution
        self.step = self.model.window_len // 2
        self.model.eval()

    @torch.no_grad()
    def forward(self, video_chunk, is_first_step=False, queries=None, grid_size=5, grid_query_frame=0,
                add_support_grid=False):
        B, T, C, H, W = video_chunk.shape
        hw = self.interp_shape
        if is_first_step:
            self.model.init_video_online_processing()
            if queries is None:
                raise NotImplementedError("the stand-in tracks given queries only")
            q = queries.clone().float()
            q[:, :, 1:] *= _scale(H, W, hw)
            self.N = q.shape[1]
            if add_support_grid:
                grid = _support_grid(self.support_grid_size, hw)
                q = torch.cat([q, torch.cat([torch.zeros_like(grid[..., :1]), grid], -1).repeat(B, 1, 1)], 1)
            self.queries = q
            return (None, None)
        tracks, vis, conf, _ = self.model(_to_model(video_chunk, hw), self.queries, iters=6, is_online=True)
        if add_support_grid:  # as upstream: the support grid is dropped only when this call says so
            tracks, vis, conf = tracks[:, :, : self.N], vis[:, :, : self.N], conf[:, :, : self.N]
        return tracks * _scale(H, W, hw, inverse=True), (vis * conf) > 0.6
