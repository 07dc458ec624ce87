"""A small, pure-torch Point-Transformer-V3-style network (the backbone of the ``particle`` dynamics).

Point Transformer V3 (Wu et al., CVPR 2024; Pointcept) is what the paper's Push-T particle model uses
("small Point Transformer V3 backbone + MLPs"). The real one imports ``spconv`` and ``torch_scatter``
(CUDA sparse convolutions, no wheel here), so this module re-implements the parts of its design that
matter at Push-T's size with plain torch ops, on CPU or GPU:

* **Serialisation**: points are ordered by a space-filling curve of their grid coordinates, the
  z-order (Morton code, 16 bits per axis) and its transposed variant ("z-trans": x and y swapped),
  as PTv3's default orders do; the blocks of the network cycle through the orders. Each point cloud
  (a *segment*: one sample of a training batch, see below) is ordered on its own and cut into
  **patches** of ``patch`` consecutive points; a segment's last patch is padded and the padding is
  masked out of the attention. (PTv3 also has Hilbert orders and shuffles the orders in training;
  not here.)
* **Attention**: multi-head ``torch.nn.functional.scaled_dot_product_attention`` within each patch
  (PTv3: the same, with flash attention on GPU). No relative-position bias, as in PTv3.
* **Conditional positional encoding** (PTv3: a submanifold sparse convolution before every block): a
  continuous convolution over the ``k`` nearest neighbours in the same segment, then a linear layer
  and LayerNorm, added residually. The per-channel weight of a neighbour is a **steerable** function
  of its offset (divided by the stage's grid size): with the offset's planar distance ``r``, height
  ``z`` and polar angle ``phi``, ``g_0(r, z) + g_c(r, z) cos(phi - theta) + g_s(r, z) sin(phi - theta)``
  (``harmonics`` = 1 angular harmonic; the g's one MLP of (r, z)), ``theta`` the angle of a per-sample
  **frame** (``forward(x, geometry, frame)``: a rotation of the plane per feature set and segment;
  none: theta = 0). The kernel thus sees every offset as it lies in the sample's frame, and since the
  cosine and sine of ``phi - theta`` split into a term in phi times a term in theta, a batch of
  feature sets, each in its own frame, on one geometry costs ``2 harmonics + 1`` shared kernels
  instead of one kernel per feature set. The ``particle`` model gives each candidate push its push's
  frame, so features given in that frame make the network's output independent of how the scene is
  turned (up to which points the world-aligned grids group together, below).
* **Encoder**: stages of ``channels`` = (32, 64, 128) with ``depths`` = (1, 1, 1) blocks (CPE, pre-norm
  attention with ``heads`` = (1, 2, 4), i.e. 32 channels a head, and an MLP of ratio ``mlp_ratio`` = 2)
  and **grid pooling** between stages: the points of a stage fall into the cells of a grid twice as
  coarse (``grid * 2**s``; stage 0's grid is the input's voxel size), each cell becomes one point at
  its members' mean position with the max of their linearly projected features (PTv3's
  SerializedPooling, stride 2).
* **Decoder**: grid unpooling back to every input point with skip connections (PTv3's
  SerializedUnpooling: projected coarse features copied to the cell's members plus the projected skip)
  with ``dec_channels`` = (32, 64) (stage 0, stage 1) and ``dec_depths`` = (1, 0) blocks (one block at
  the finest stage); a two-layer MLP head gives the outputs.

**How it differs from PTv3**, besides being pure torch: no Hilbert orders and no order shuffling (two
z-orders, cycled), a kNN continuous convolution for the sparse-convolution positional encoding, and
that encoding steerable into per-sample frames (above; PTv3's sparse convolution has a free weight
per voxel offset, tied to the grid's axes). Sizes: PTv3's smallest published configuration has
encoder channels (32, 64, 128, 256, 512) with depths (2, 2, 2, 6, 2), 16 channels a head and decoder
blocks at every stage (about 46 M parameters); this one has three stages of one block each, 32
channels a head and one decoder block: 248,002 parameters for 14 input and 2 output channels
(:func:`count_parameters`), sized for Push-T's 40-50 model particles per T (one per 1.5 cm voxel)
and 1000 candidate pushes per replan in about 0.3 s on one CPU thread (the head size, the single
harmonic and the missing stage-1 decoder block are what that budget allowed: with PTv3's 16-channel
heads and a block at every decoder stage the unsteered network took about 0.3 s; each harmonic adds
about 0.04 s).

**Batching.** The geometry (orders, patches, neighbours, pooling clusters) depends only on the points,
so it is built once (:func:`build_geometry`) and shared by every row of the feature batch ``B x M x C``:
the ``particle`` model predicts all candidate pushes of one point cloud in one call. Several point
clouds (a training batch) are one geometry of their union with a ``segment`` id per point: neighbours,
pooling cells and patches never mix segments, and each segment is ordered and cut into patches exactly
as it would be alone, so a cloud gives the same outputs in a union as alone (up to float rounding).
Frames are given per segment (``frame`` B' x S x 2 x 2, B' 1 or B): one frame per cloud of a training
union, or one per feature set of a candidate batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PTv3Lite", "Geometry", "StageGeometry", "build_geometry", "frame_coefficients", "morton_code", "count_parameters"]

ORDERS = ("z", "z-trans")
TIE = 1e-4
"""Neighbour distances are compared in cells of ``TIE * grid`` (ties to the lower index)."""


# --------------------------------------------------------------------------- serialisation


def _spread_bits(v: torch.Tensor) -> torch.Tensor:
    """The low 16 bits of int64 ``v`` spread to every third bit (bit i -> bit 3 i)."""
    v = v & 0xFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


def morton_code(grid: torch.Tensor) -> torch.Tensor:
    """z-order (Morton) codes (int64, M) of non-negative integer grid coordinates ``grid`` (M x 3, each
    below 2**16): the bits of x, y and z interleaved, x lowest."""
    g = grid.long()
    return _spread_bits(g[:, 0]) | (_spread_bits(g[:, 1]) << 1) | (_spread_bits(g[:, 2]) << 2)


DENSE_LIMIT = 256
"""Stages with at most this many points (all segments together) use, for a batch of more than one
feature set, dense M x M forms of the patch attention (a block mask) and of the positional encoding (an
M x M x C weight), which on a CPU are much faster than gathers for a large batch of candidates; larger
stages and single feature sets (training unions) gather. The two compute the same function."""


@dataclass
class Serialization:
    index: torch.Tensor    # L: the point at each position of the padded, ordered sequence (pads: 0)
    mask: torch.Tensor | None  # nP x 1 x 1 x P bool: which keys are points (None: no padding)
    inverse: torch.Tensor  # M: the position of each point in the sequence
    patch: int
    dense: torch.Tensor | None = None  # M x M bool: i attends to j (same patch), when M <= DENSE_LIMIT


@dataclass
class StageGeometry:
    coord: torch.Tensor          # M x 3 (the units of the input coordinates)
    segment: torch.Tensor        # M (int64, non-decreasing)
    grid: float
    knn: torch.Tensor            # M x k neighbour indices (invalid ones: the point itself)
    knn_rel: torch.Tensor        # M x k x 3 neighbour position minus the point's, / grid (invalid: 0)
    knn_valid: torch.Tensor      # M x k x 1 float, 1 for a neighbour in the same segment
    knn_dense: torch.Tensor | None  # M x M x k one-hot of knn (valid neighbours only), when M <= DENSE_LIMIT
    orders: list[Serialization]
    cluster: torch.Tensor | None = None  # M: the next stage's point each point pools into
    members: torch.Tensor | None = None  # M_next x Kmax: each next-stage point's members (pad: M)


Geometry = list[StageGeometry]


def _serialize(coord: torch.Tensor, segment: torch.Tensor, grid: float, order: str, patch: int) -> Serialization:
    M = coord.shape[0]
    g = torch.floor(coord / grid).long()
    nseg = int(segment[-1]) + 1
    gmin = torch.full((nseg, 3), 1 << 40, dtype=torch.long).scatter_reduce(
        0, segment[:, None].expand(-1, 3), g, reduce="amin")
    g = (g - gmin[segment]).clamp(0, 0xFFFF)
    if order == "z-trans":
        g = g[:, [1, 0, 2]]
    key = (segment << 48) | morton_code(g)
    perm = torch.argsort(key, stable=True)
    counts = torch.bincount(segment, minlength=nseg)
    padded = (counts + patch - 1) // patch * patch
    start = torch.cumsum(counts, 0) - counts
    pstart = torch.cumsum(padded, 0) - padded
    seg_sorted = segment[perm]
    pos = pstart[seg_sorted] + (torch.arange(M) - start[seg_sorted])
    L = int(padded.sum())
    index = torch.zeros(L, dtype=torch.long)
    index[pos] = perm
    inverse = torch.empty(M, dtype=torch.long)
    inverse[perm] = pos
    mask = None
    if L != M:
        valid = torch.zeros(L, dtype=torch.bool)
        valid[pos] = True
        mask = valid.view(L // patch, 1, 1, patch)
    dense = None
    if M <= DENSE_LIMIT:
        block = inverse // patch
        dense = block[:, None] == block[None, :]
    return Serialization(index, mask, inverse, patch, dense)


def _knn(coord: torch.Tensor, segment: torch.Tensor, k: int, grid: float):
    """k nearest neighbours of each point within its segment (segments padded to one batch)."""
    M = coord.shape[0]
    nseg = int(segment[-1]) + 1
    counts = torch.bincount(segment, minlength=nseg)
    width = int(counts.max())
    k = min(k, width)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(M) - start[segment]
    padded = torch.full((nseg, width, 3), 1e9)
    padded[segment, slot] = coord
    owner = torch.full((nseg, width), -1, dtype=torch.long)
    owner[segment, slot] = torch.arange(M)
    d = torch.cdist(padded.double(), padded.double())                # nseg x width x width
    # distances quantised to TIE grid cells, ties to the lower index: float noise cannot swap
    # equidistant neighbours of a regular grid of points
    q = torch.round(d / (TIE * grid)).clamp(max=2 ** 40).long()
    q = q.masked_fill((owner < 0)[:, None, :], 2 ** 41)
    qs, j = torch.sort(q[segment, slot], dim=1, stable=True)
    j = j[:, :k]                                                      # M x k
    valid = qs[:, :k] < 2 ** 41
    idx = torch.where(valid, owner[segment[:, None], j], torch.arange(M)[:, None])
    rel = (coord[idx] - coord[:, None]) / grid
    rel = rel * valid[..., None]
    return idx, rel, valid[..., None].to(coord.dtype)


def build_geometry(coord: torch.Tensor, segment: torch.Tensor | None = None, *, grid: float,
                   stages: int = 3, patch: tuple[int, ...] | int = 16, k: int = 8,
                   orders: tuple[str, ...] = ORDERS) -> Geometry:
    """The shared geometry of point cloud(s) ``coord`` (M x 3 float32) for :class:`PTv3Lite`.

    ``segment`` (M int64, non-decreasing; default all 0) says which cloud each point belongs to.
    ``grid`` is stage 0's cell size (the input's voxel size, same units as ``coord``); stage ``s`` uses
    ``grid * 2**s``. Cells are anchored at the coordinates' origin, so the caller chooses the anchor
    (``particle`` passes coordinates relative to the cloud's centroid)."""
    coord = coord.detach().float()
    M = coord.shape[0]
    if M == 0:
        raise ValueError("coord: no points")
    segment = torch.zeros(M, dtype=torch.long) if segment is None else segment.long()
    patches = (patch,) * stages if isinstance(patch, int) else tuple(patch)
    out: Geometry = []
    for s in range(stages):
        gs = grid * 2 ** s
        M = coord.shape[0]
        idx, rel, valid = _knn(coord, segment, k, gs)
        sers = [_serialize(coord, segment, gs, o, patches[s]) for o in orders]
        dense = None
        if M <= DENSE_LIMIT:
            dense = torch.zeros(M, M, idx.shape[1])
            dense.scatter_(1, idx[:, None, :], valid.permute(0, 2, 1))
        st = StageGeometry(coord, segment, gs, idx, rel, valid, dense, sers)
        out.append(st)
        if s == stages - 1:
            break
        cell = torch.floor(coord / (2 * gs)).long()
        keys = torch.cat([segment[:, None], cell], 1)
        uniq, cluster = torch.unique(keys, dim=0, return_inverse=True)
        Mn = uniq.shape[0]
        counts = torch.bincount(cluster, minlength=Mn)
        new_coord = torch.zeros(Mn, 3).index_add_(0, cluster, coord) / counts[:, None]
        order = torch.argsort(cluster, stable=True)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(M) - first[cluster[order]]
        members = torch.full((Mn, int(counts.max())), M, dtype=torch.long)
        members[cluster[order], rank] = order
        st.cluster, st.members = cluster, members
        coord, segment = new_coord, uniq[:, 0].contiguous()
    return out


# --------------------------------------------------------------------------- layers


class KnnCPE(nn.Module):
    """Conditional positional encoding: y_i = LN(W sum_k w(p_k - p_i) * x_k) over the k nearest neighbours,
    with a steerable kernel: for an offset at distance r (in the plane), height z and polar angle phi,
    ``w = g_0(r, z) + sum_{n=1..harmonics} g_cn(r, z) cos(n (phi - theta)) + g_sn(r, z) sin(n (phi - theta))``
    (the g's one MLP of (r, z), per channel), theta the angle of the point's frame (``frame``'s rotation;
    0 without one). The kernel is then a function of the offset as seen in the frame, and since
    ``cos(n(phi - theta))`` and ``sin(n(phi - theta))`` split into terms in phi times terms in theta,
    a batch of frames on one geometry costs ``2 harmonics + 1`` shared kernels, not one per frame."""

    def __init__(self, channels: int, hidden: int = 16, harmonics: int = 1) -> None:
        super().__init__()
        self.channels, self.harmonics = channels, harmonics
        self.pos = nn.Sequential(nn.Linear(2, hidden), nn.GELU(), nn.Linear(hidden, (2 * harmonics + 1) * channels))
        self.linear = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)

    def kernels(self, st: StageGeometry) -> torch.Tensor:
        """J x M x k x C basis kernels (J = 2 harmonics + 1): constant, then cos and sin of each harmonic's
        frame angle multiply them."""
        rel = st.knn_rel
        r = torch.linalg.vector_norm(rel[..., :2], dim=-1, keepdim=True)           # M x k x 1
        g = self.pos(torch.cat([r, rel[..., 2:]], -1)) * st.knn_valid               # M x k x J C
        g = g.view(*g.shape[:2], 2 * self.harmonics + 1, self.channels).movedim(2, 0)   # J x M x k x C
        out = [g[0]]
        if self.harmonics:
            safe = torch.where(r > 0, r, torch.ones_like(r))
            c1 = torch.where(r > 0, rel[..., :1] / safe, torch.zeros_like(r))      # cos phi (0 at r = 0)
            s1 = torch.where(r > 0, rel[..., 1:2] / safe, torch.zeros_like(r))
            c, s = c1, s1
            for n in range(1, self.harmonics + 1):
                gc, gs = g[2 * n - 1], g[2 * n]
                out += [gc * c + gs * s, gc * s - gs * c]
                c, s = c * c1 - s * s1, s * c1 + c * s1
        return torch.stack(out)

    def forward(self, x: torch.Tensor, st: StageGeometry, coef: torch.Tensor | None = None) -> torch.Tensor:
        """``coef``: B' x M x J (B' 1 or B) per point, (1, cos theta, sin theta, cos 2 theta, ...) of its
        frame's angle theta (:func:`frame_coefficients`); None: theta = 0."""
        K = self.kernels(st)                                          # J x M x k x C
        if coef is None:
            w = K[0] + K[1::2].sum(0)                                 # cos 0 = 1, sin 0 = 0
            if st.knn_dense is not None and x.shape[0] > 1:
                y = torch.einsum("ijc,bjc->bic", torch.matmul(st.knn_dense, w), x)   # M x M x C weights
            else:
                y = (x[:, st.knn] * w).sum(2)
        elif st.knn_dense is not None and x.shape[0] > 1:
            D = torch.matmul(st.knn_dense, K)                         # J x M x M x C
            y = torch.einsum("bij,bjic->bic", coef.expand(x.shape[0], -1, -1),
                             torch.einsum("jimc,bmc->bjic", D, x))
        else:
            w = torch.einsum("bij,jikc->bikc", coef, K)               # B' x M x k x C
            y = (x[:, st.knn] * w).sum(2)
        return self.norm(self.linear(y))


def frame_coefficients(frame: torch.Tensor, segment: torch.Tensor, harmonics: int) -> torch.Tensor:
    """B' x M x (2 harmonics + 1): (1, cos theta, sin theta, ..., cos(h theta), sin(h theta)) for each point,
    theta its segment's frame angle; ``frame`` B' x S x 2 x 2 rotations ``[[cos, sin], [-sin, cos]]`` (the
    map of the world's xy into the frame: a direction at angle theta goes to +x)."""
    R = frame[:, segment]
    c1, s1 = R[..., 0, 0], R[..., 0, 1]
    out, c, s = [torch.ones_like(c1)], c1, s1
    for _ in range(harmonics):
        out += [c, s]
        c, s = c * c1 - s * s1, s * c1 + c * s1
    return torch.stack(out, -1)


class PatchAttention(nn.Module):
    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, ser: Serialization) -> torch.Tensor:
        B, M, C = x.shape
        H, P = self.heads, ser.patch
        if ser.dense is not None and B > 1:     # the same attention, as a block mask over the unordered points
            q, k, v = self.qkv(x).view(B, M, 3, H, C // H).permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=ser.dense)
            return self.proj(o.transpose(1, 2).reshape(B, M, C))
        L = ser.index.shape[0]
        qkv = self.qkv(x)[:, ser.index]                                   # B x L x 3C
        qkv = qkv.view(B, L // P, P, 3, H, C // H).permute(3, 0, 1, 4, 2, 5)  # 3 x B x nP x H x P x d
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=ser.mask)
        o = o.permute(0, 1, 3, 2, 4).reshape(B, L, C)[:, ser.inverse]
        return self.proj(o)


class Block(nn.Module):
    def __init__(self, channels: int, heads: int, mlp_ratio: float, harmonics: int = 1) -> None:
        super().__init__()
        self.cpe = KnnCPE(channels, harmonics=harmonics)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = PatchAttention(channels, heads)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor, st: StageGeometry, order: int, coef: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.cpe(x, st, coef)
        x = x + self.attn(self.norm1(x), st.orders[order % len(st.orders)])
        return x + self.mlp(self.norm2(x))


class GridPool(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cin, cout)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor, st: StageGeometry) -> torch.Tensor:
        y = self.proj(x)
        y = torch.cat([y, y.new_full((y.shape[0], 1, y.shape[2]), float("-inf"))], 1)
        y = y[:, st.members].amax(2)                   # B x M_next x C
        return F.gelu(self.norm(y))


class GridUnpool(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(cin, cout), nn.LayerNorm(cout), nn.GELU())
        self.skip = nn.Sequential(nn.Linear(cskip, cout), nn.LayerNorm(cout), nn.GELU())

    def forward(self, x: torch.Tensor, skip: torch.Tensor, st: StageGeometry) -> torch.Tensor:
        return self.proj(x)[:, st.cluster] + self.skip(skip)


class PTv3Lite(nn.Module):
    """``forward(features B x M x in_channels, geometry) -> B x M x out_channels`` (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, *, channels: tuple[int, ...] = (32, 64, 128),
                 depths: tuple[int, ...] = (1, 1, 1), heads: tuple[int, ...] = (1, 2, 4),
                 dec_channels: tuple[int, ...] = (32, 64), dec_depths: tuple[int, ...] = (1, 0),
                 dec_heads: tuple[int, ...] = (1, 2), mlp_ratio: float = 2.0, harmonics: int = 1) -> None:
        super().__init__()
        S = len(channels)
        if not (len(depths) == len(heads) == S and len(dec_channels) == len(dec_depths) == len(dec_heads) == S - 1):
            raise ValueError("channels/depths/heads need one entry per stage, dec_* one per stage but the last")
        self.stages, self.harmonics = S, harmonics
        self.embed = nn.Sequential(nn.Linear(in_channels, channels[0]), nn.LayerNorm(channels[0]), nn.GELU())
        self.enc = nn.ModuleList(nn.ModuleList(Block(channels[s], heads[s], mlp_ratio, harmonics) for _ in range(depths[s]))
                                 for s in range(S))
        self.pool = nn.ModuleList(GridPool(channels[s], channels[s + 1]) for s in range(S - 1))
        # decoder stage s (s = S-2 .. 0) unpools stage s+1's features onto stage s's points
        self.unpool = nn.ModuleList()
        self.dec = nn.ModuleList()
        for s in range(S - 1):
            cin = channels[-1] if s == S - 2 else dec_channels[s + 1]
            self.unpool.append(GridUnpool(cin, channels[s], dec_channels[s]))
            self.dec.append(nn.ModuleList(Block(dec_channels[s], dec_heads[s], mlp_ratio, harmonics)
                                          for _ in range(dec_depths[s])))
        c0 = dec_channels[0] if S > 1 else channels[0]
        self.head = nn.Sequential(nn.Linear(c0, c0), nn.GELU(), nn.Linear(c0, out_channels))

    def forward(self, x: torch.Tensor, geometry: Geometry, frame: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` B x M x in_channels on ``geometry`` (:func:`build_geometry`). ``frame`` (optional, B' x S x 2
        x 2 with B' 1 or B, S the geometry's segments): a rotation of the plane per feature set and segment;
        the positional encodings then see every relative position with its xy rotated by its segment's
        ``frame`` (``frame @ xy``), so features given in that frame make the network's function independent
        of how the geometry's coordinates are turned (up to which points its partitions group)."""
        if len(geometry) != self.stages:
            raise ValueError(f"geometry has {len(geometry)} stages, the network {self.stages}")
        coefs = [None if frame is None else frame_coefficients(frame.to(x.dtype), st.segment, self.harmonics)
                 for st in geometry]
        x = self.embed(x)
        skips = []
        n = 0
        for s in range(self.stages):
            if s:
                x = self.pool[s - 1](x, geometry[s - 1])
            for blk in self.enc[s]:
                x = blk(x, geometry[s], n, coefs[s])
                n += 1
            skips.append(x)
        for s in reversed(range(self.stages - 1)):
            x = self.unpool[s](x, skips[s], geometry[s])
            for blk in self.dec[s]:
                x = blk(x, geometry[s], n, coefs[s])
                n += 1
        return self.head(x)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
