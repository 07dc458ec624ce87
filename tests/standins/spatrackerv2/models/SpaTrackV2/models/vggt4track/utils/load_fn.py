"""Stand-in of ``load_fn.preprocess_image`` (crop mode, as SpaTrackerV2's inference.py uses it)."""

from __future__ import annotations

import torch.nn.functional as F


def preprocess_image(img_tensor, mode="crop", target_size=518, keep_ratio=False):
    """(T, C, H, W) or (C, H, W) -> width ``target_size``, height a multiple of 14 (centre crop to
    ``target_size`` rows when taller). Values keep their range (bicubic resampling)."""
    if mode != "crop":
        raise NotImplementedError("the stand-in implements crop mode only")
    squeeze = img_tensor.dim() == 3
    x = img_tensor[None] if squeeze else img_tensor
    T, C, H, W = x.shape
    new_w = target_size
    new_h = int(round(H * (new_w / W) / 14) * 14)
    out = F.interpolate(x.float(), size=(new_h, new_w), mode="bicubic", align_corners=False)
    if not keep_ratio and new_h > target_size:
        top = (new_h - target_size) // 2
        out = out[:, :, top: top + target_size]
    return out[0] if squeeze else out
