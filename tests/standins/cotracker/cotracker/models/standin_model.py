"""The stand-in "network": SSD template tracking on CoTracker3-normalised luminance.

Same call convention as the upstream low-level model: ``forward(video, queries, iters, is_online)``
with ``video`` (B, T, 3, H, W) float 0-255 RGB at the model resolution and ``queries`` (B, N, 3)
(t, x, y) in model-resolution pixels; returns ``(coords (B, T, N, 2), vis (B, T, N) probability,
conf (B, T, N) probability, None)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PATCH_RADIUS = 7       # model pixels
SEARCH_RADIUS = 5      # model pixels per frame
MIN_CONTRAST = 0.02    # template std in normalised units ([-1, 1]) below which nothing can be tracked
MAX_COST = 0.5         # normalised SSD (cost / template variance) above which a point is occluded
LUMA = (0.299, 0.587, 0.114)  # weights of channels 0, 1, 2 read as R, G, B


def _grid(radius: int) -> torch.Tensor:
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)  # (K, 2) as (dx, dy)


def _sample(img: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``img`` (H, W) at pixel positions ``pts`` (..., 2) (x, y)."""
    H, W = img.shape
    gx = 2.0 * pts[..., 0] / (W - 1) - 1.0
    gy = 2.0 * pts[..., 1] / (H - 1) - 1.0
    grid = torch.stack([gx, gy], -1).reshape(1, -1, 1, 2)
    out = F.grid_sample(img[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(pts.shape[:-1])


class StandInCoTracker3(torch.nn.Module):
    def __init__(self, window_len: int = 60, offline: bool = True) -> None:
        super().__init__()
        self.window_len = window_len
        self.offline = offline
        self.register_buffer("model_resolution_hw", torch.tensor([384, 512]))
        self.patch = _grid(PATCH_RADIUS)
        self.search = _grid(SEARCH_RADIUS)
        self.init_video_online_processing()

    @property
    def model_resolution(self) -> tuple[int, int]:
        h, w = (int(v) for v in self.model_resolution_hw.tolist())
        return (h, w)

    def init_video_online_processing(self) -> None:
        self.online_ind = 0
        self.online_frames: torch.Tensor | None = None

    # ------------------------------------------------------------------ tracking
    def _luma(self, video: torch.Tensor) -> torch.Tensor:
        v = 2.0 * (video / 255.0) - 1.0  # CoTracker3's own input normalisation
        w = torch.tensor(LUMA, dtype=v.dtype, device=v.device).view(1, 1, 3, 1, 1)
        return (v * w).sum(2)  # (B, T, H, W)

    def _step(self, img: torch.Tensor, cur: torch.Tensor, tmpl: torch.Tensor, var: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best match of each template around ``cur`` (N, 2) in ``img``: (positions, visibility prob)."""
        N = cur.shape[0]
        cand = cur[:, None, :] + self.search[None]                      # N, K, 2
        pts = cand[:, :, None, :] + self.patch[None, None]              # N, K, P, 2
        patches = _sample(img, pts)                                     # N, K, P
        cost = ((patches - tmpl[:, None, :]) ** 2).mean(-1)             # N, K
        side = 2 * SEARCH_RADIUS + 1
        best = cost.argmin(-1)
        iy, ix = best // side, best % side
        grid = cost.reshape(N, side, side)
        n = torch.arange(N)
        sub = torch.zeros(N, 2)
        for axis, idx in ((0, ix), (1, iy)):
            inner = (idx > 0) & (idx < side - 1)
            lo = torch.clamp(idx - 1, 0, side - 1)
            hi = torch.clamp(idx + 1, 0, side - 1)
            if axis == 0:
                c_lo, c_mid, c_hi = grid[n, iy, lo], grid[n, iy, idx], grid[n, iy, hi]
            else:
                c_lo, c_mid, c_hi = grid[n, lo, ix], grid[n, idx, ix], grid[n, hi, ix]
            denom = c_lo - 2 * c_mid + c_hi
            off = torch.where(inner & (denom > 1e-12), 0.5 * (c_lo - c_hi) / denom.clamp_min(1e-12),
                              torch.zeros_like(denom))
            sub[:, axis] = off.clamp(-0.5, 0.5)
        pos = cand[n, best] + sub
        ncost = cost[n, best] / (var + 1e-12)
        H, W = img.shape
        inside = (pos[:, 0] >= 0) & (pos[:, 0] <= W - 1) & (pos[:, 1] >= 0) & (pos[:, 1] <= H - 1)
        prob = torch.sigmoid((MAX_COST - ncost) * 20.0) * inside
        return pos, prob

    def _track(self, g: torch.Tensor, queries: torch.Tensor, backward: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """g (T, H, W) luminance; queries (N, 3). Returns coords (T, N, 2), vis prob (T, N)."""
        T = g.shape[0]
        N = queries.shape[0]
        tq = queries[:, 0].round().long().clamp(0, T - 1)
        q = queries[:, 1:].float()
        tmpl = torch.empty(N, self.patch.shape[0])
        for t in tq.unique().tolist():
            sel = tq == t
            tmpl[sel] = _sample(g[t], q[sel][:, None, :] + self.patch[None])
        var = tmpl.var(-1, unbiased=False)
        trackable = var.sqrt() > MIN_CONTRAST
        coords = q[None].repeat(T, 1, 1)
        vis = torch.zeros(T, N)
        vis[tq, torch.arange(N)] = 1.0
        passes = [range(T)] + ([range(T - 1, -1, -1)] if backward else [])
        for direction, frames in zip((1, -1), passes):
            cur = q.clone()
            for t in frames:
                active = (tq < t) if direction == 1 else (tq > t)
                keep = active & trackable
                if keep.any():
                    pos, prob = self._step(g[t], cur[keep], tmpl[keep], var[keep])
                    cur[keep] = pos
                    coords[t, keep] = pos
                    vis[t, keep] = prob
                vis[t, active & ~trackable] = 0.0
        return coords, vis

    def forward(self, video: torch.Tensor, queries: torch.Tensor, iters: int = 4, is_online: bool = False):
        B, T, C, H, W = video.shape
        assert C == 3, "video must be (B, T, 3, H, W)"
        assert (H, W) == self.model_resolution, "resize the video to model_resolution first"
        if is_online:
            assert not self.offline, "this is an offline model"
            frames = video
            if self.online_frames is None:
                self.online_frames = frames
            else:
                keep = self.online_frames[:, : self.online_ind]
                self.online_frames = torch.cat([keep, frames], 1)
            video = self.online_frames
            self.online_ind += self.window_len // 2
        g = self._luma(video)
        out_c, out_v = [], []
        for b in range(B):
            c, v = self._track(g[b], queries[b], backward=not is_online)
            out_c.append(c)
            out_v.append(v)
        coords = torch.stack(out_c)
        vis = torch.stack(out_v)
        return coords, vis, vis.clone(), None
