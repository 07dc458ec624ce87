"""d2f_core.devices: the device / dtype choice of every torch adapter, with CUDA mocked (this machine
has none), and the adapters that use it."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

import d2f_core.devices as dev  # noqa: E402
from d2f_core.devices import choose, resolve_device, resolve_dtype  # noqa: E402


@pytest.fixture
def cuda(monkeypatch):
    """A machine with CUDA: torch says so (nothing is moved to a GPU in these tests)."""
    state = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: state["bf16"])
    dev._LOGGED.clear()
    return state


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dev._LOGGED.clear()


def test_auto_on_cuda_follows_the_upstream_precision(cuda):
    assert (choose(component="x").device, choose(component="x").dtype) == ("cuda", "bfloat16")
    assert choose(component="x", cuda_dtype="float32").dtype == "float32"     # CoTracker3, HaMeR
    cuda["bf16"] = False                                                        # a pre-Ampere GPU
    c = choose(component="y")
    assert (c.device, c.dtype) == ("cuda", "float16") and "not supported by this GPU" in c.reason
    assert choose("cuda:1", "float32", component="z").device == "cuda:1"
    assert choose("cpu", component="z").dtype == "float32"                     # auto on the CPU: float32


def test_auto_without_cuda_is_the_cpu_in_float32(no_cuda):
    c = choose(component="x")
    assert (c.device, c.dtype) == ("cpu", "float32") and "no CUDA" in c.reason
    with pytest.raises(ValueError, match="CUDA is not available here.*auto or cpu"):
        resolve_device("cuda", component="video wan2.1")
    with pytest.raises(ValueError, match="float16 on cpu"):
        resolve_dtype("float16", "cpu")
    assert resolve_dtype("bfloat16", "cpu")[0] == "bfloat16"                   # explicit: kept


def test_choice_is_logged_once(cuda, caplog):
    with caplog.at_level(logging.INFO, logger="d2f.devices"):
        choose(component="depth spatialtracker-v2")
        choose(component="depth spatialtracker-v2")
    msgs = [r.getMessage() for r in caplog.records if "spatialtracker" in r.getMessage()]
    assert msgs == ["depth spatialtracker-v2 runs on cuda bfloat16 (device auto: CUDA available; dtype auto: "
                    "bfloat16 on CUDA, as upstream)"]


def test_free_gpu_memory_mocked(cuda, monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (12 * 2**30, 80 * 2**30))
    assert dev.free_gpu_memory("cuda") == (12.0, 80.0)


def test_adapters_choose_with_cuda_mocked(cuda):
    """Each adapter's device/dtype on a CUDA machine with its options at auto (built around fakes:
    nothing runs)."""
    from d2f_plugins.depth.spatialtracker_v2 import SpatialTrackerV2Depth
    from d2f_plugins.tracker.cotracker3 import CoTracker3Tracker

    ct = CoTracker3Tracker(torch.nn.Identity())
    assert (ct.device.device, ct.device.dtype) == ("cuda", "float32")          # upstream demo: float32

    class Front:
        _hub_mixin_config = {"img_size": 518, "patch_size": 14}

    st = SpatialTrackerV2Depth(object(), Front(), lambda x, mode="crop", target_size=518: x)
    assert (st.device.device, st.device.dtype) == ("cuda", "bfloat16")        # inference.py: bf16 autocast
    assert st._pre_kw == {"mode": "crop", "target_size": 518}
    from d2f_plugins.segment.grounded_sam2 import GroundedSAM2Options
    from d2f_plugins.video.wan import WanOptions
    from d2f_plugins.hand.hamer import HaMeROptions
    for opts, want in ((WanOptions(), "bfloat16"), (GroundedSAM2Options(), "bfloat16"), (HaMeROptions(), "float32")):
        assert opts.device == "auto" and opts.dtype == "auto"
        assert choose(opts.device, opts.dtype, component="t", cuda_dtype=opts.needs.cuda_dtype).dtype == want


def test_autocast_only_for_reduced_precision(no_cuda):
    c32 = choose(component="a")
    with dev.autocast(c32):
        assert not torch.is_autocast_enabled("cpu")
    cbf = choose("cpu", "bfloat16", component="b")
    with dev.autocast(cbf):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_wan_dtype_keyword_is_read_from_diffusers_docs():
    from d2f_plugins.video.wan import _dtype_keyword

    def new(): ...
    new.__doc__ = "Args:\n    dtype (`torch.dtype`, *optional*):\n        Override the default dtype."

    def old(): ...
    old.__doc__ = "Parameters:\n    torch_dtype (`torch.dtype`, *optional*):\n        Override the default."
    assert _dtype_keyword(new) == "dtype" and _dtype_keyword(old) == "torch_dtype"
    pytest.importorskip("diffusers")
    from diffusers import WanImageToVideoPipeline
    assert _dtype_keyword(WanImageToVideoPipeline.from_pretrained) in ("dtype", "torch_dtype")


def test_wan_offload_needs_cuda_and_tiling_reaches_the_vae(tmp_path, no_cuda):
    pytest.importorskip("diffusers")
    from d2f_core.registry import PluginError
    from d2f_plugins.video.wan import WanOptions, WanVideoModel
    from d2f_plugins.video.wan_tiny import build_tiny_wan

    w = build_tiny_wan(tmp_path / "wan")
    with pytest.raises(PluginError, match="cpu_offload='model' moves models to a GPU"):
        WanVideoModel(WanOptions(weights=str(w), cpu_offload="model"))
    m = WanVideoModel(WanOptions(weights=str(w), vae_tiling=True))
    assert m.pipe.vae.use_tiling and (m.device.device, m.device.dtype) == ("cpu", "float32")
    assert m.pipe.transformer.dtype == torch.float32 and m.pipe.vae.dtype == torch.float32
    assert type(m.pipe).__name__ == "WanImageToVideoPipeline"
