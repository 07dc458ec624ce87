"""Stand-in of ``VGGT4Track`` (SpaTrackerV2's feed-forward front end). See the README."""

from __future__ import annotations

import json
import os

import torch


def depth_of_rgb01(video01: torch.Tensor) -> torch.Tensor:
    """The stand-in's "depth network": 1 + r + 0.5 g + 0.25 b on 0-1 RGB (channel axis -3)."""
    r, g, b = video01.unbind(-3)
    return 1.0 + r + 0.5 * g + 0.25 * b


class VGGT4Track(torch.nn.Module):
    def __init__(self, img_size=518, patch_size=14, embed_dim=1024) -> None:
        super().__init__()
        self.focal_scale = torch.nn.Parameter(torch.tensor(1.0), requires_grad=False)
        # as huggingface_hub's PyTorchModelHubMixin records the init arguments (saved as config.json)
        self._hub_mixin_config = {"img_size": img_size, "patch_size": patch_size, "embed_dim": embed_dim}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            raise OSError(f"stand-in VGGT4Track: {path} is not a local folder (the stand-in never downloads)")
        cfg = os.path.join(path, "config.json")
        if os.path.isfile(cfg):  # the mixin builds the model from its saved config
            with open(cfg) as f:
                return cls(**json.load(f))
        return cls()

    def forward(self, images: torch.Tensor) -> dict:
        """images (B, T, 3, h, w) RGB in 0-1."""
        B, T, C, h, w = images.shape
        z = depth_of_rgb01(images)                                   # B T h w
        f = self.focal_scale * float(max(h, w))
        K = torch.tensor([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        X = (xs - K[0, 2]) / K[0, 0] * z
        Y = (ys - K[1, 2]) / K[1, 1] * z
        points = torch.stack([X, Y, z], -1)                           # B T h w 3
        luma = 0.299 * images[:, :, 0] + 0.587 * images[:, :, 1] + 0.114 * images[:, :, 2]
        conf = torch.where(luma > 0.95, torch.full_like(luma, 0.1), torch.full_like(luma, 0.9))
        return {"points_map": points, "unc_metric": conf,
                "poses_pred": torch.eye(4).expand(B, T, 4, 4).clone(),
                "intrs": K.expand(B, T, 3, 3).clone()}
