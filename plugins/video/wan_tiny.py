"""Build a tiny random-weight Wan 2.1 image-to-video pipeline into a folder.

The folder has the layout of the official diffusers releases
(``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``, ``Wan-AI/Wan2.1-FLF2V-14B-720P-Diffusers``):
``model_index.json`` plus ``tokenizer/``, ``text_encoder/`` (UMT5), ``image_encoder/`` (CLIP vision),
``image_processor/``, ``vae/`` (``AutoencoderKLWan``), ``transformer/`` (``WanTransformer3DModel``) and
``scheduler/``, so ``WanImageToVideoPipeline.from_pretrained(folder)`` loads it exactly like the real
weights. The weights are random: the frames are noise. It exists so the ``wan2.1`` adapter, its
conformance checks and an end-to-end run can be exercised on a CPU without downloading 14B weights.

Nothing is downloaded: the tokenizer is trained here with ``tokenizers`` on a few sentences, and
every model is built from a config.

``flf2v=True`` builds the first-last-frame variant: the transformer's ``pos_embed_seq_len`` is twice
the CLIP token count (the image embeddings of the first and the last frame are concatenated).

Command line::

    python -m d2f_plugins.video.wan_tiny OUT_DIR [--flf2v]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["build_tiny_wan", "TINY_RESOLUTION"]

TINY_RESOLUTION = (32, 32)
"""(height, width) the tiny pipeline is meant to run at (any multiple of 16 works)."""

_CORPUS = [
    "push the box to the right by one hand",
    "the camera holds a still pose, not zooming in or out",
    "open the drawer, put the bread in the bowl, pull the chair, push the block",
    "a hand moves the object on the table",
]
_CLIP_IMAGE_SIZE = 32
_CLIP_PATCH = 8  # (32 / 8)^2 + 1 = 17 image tokens
_MARKER = "d2f_tiny_wan.json"


def _tokenizer(vocab_size: int = 64):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"])
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)


class _quiet:
    """Silence the Hugging Face progress bars while saving (restored afterwards)."""

    def __enter__(self) -> None:
        import huggingface_hub.utils as hf
        from diffusers.utils import logging as dl
        from transformers.utils import logging as tl
        self._state = (hf.are_progress_bars_disabled(), dl.is_progress_bar_enabled(), tl.is_progress_bar_enabled())
        hf.disable_progress_bars()
        dl.disable_progress_bar()
        tl.disable_progress_bar()

    def __exit__(self, *exc) -> None:
        import huggingface_hub.utils as hf
        from diffusers.utils import logging as dl
        from transformers.utils import logging as tl
        hf_off, dl_on, tl_on = self._state
        if not hf_off:
            hf.enable_progress_bars()
        if dl_on:
            dl.enable_progress_bar()
        if tl_on:
            tl.enable_progress_bar()


def build_tiny_wan(out_dir: str | Path, *, flf2v: bool = False, seed: int = 0) -> Path:
    """Write a tiny random-weight Wan 2.1 I2V (or FLF2V with ``flf2v=True``) pipeline to ``out_dir``.

    Returns ``out_dir``. Building takes about a second on a CPU and writes well under 10 MB. The
    global torch random state is left untouched (``torch.random.fork_rng``).
    """
    import torch
    from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline,
                           WanTransformer3DModel)
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config,
                              UMT5EncoderModel)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = UMT5EncoderModel(UMT5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
            relative_attention_num_buckets=8, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id))
        clip_cfg = CLIPVisionConfig(hidden_size=8, intermediate_size=16, projection_dim=8,
                                    num_hidden_layers=2, num_attention_heads=2,
                                    image_size=_CLIP_IMAGE_SIZE, patch_size=_CLIP_PATCH)
        image_encoder = CLIPVisionModel(clip_cfg)
        tokens = (_CLIP_IMAGE_SIZE // _CLIP_PATCH) ** 2 + 1
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True])
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
            out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=clip_cfg.hidden_size,
            pos_embed_seq_len=2 * tokens if flf2v else None)
    image_processor = CLIPImageProcessor(size={"shortest_edge": _CLIP_IMAGE_SIZE},
                                         crop_size={"height": _CLIP_IMAGE_SIZE, "width": _CLIP_IMAGE_SIZE})
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                   scheduler=scheduler, image_processor=image_processor,
                                   image_encoder=image_encoder, transformer=transformer)
    with _quiet():
        pipe.save_pretrained(out)
    (out / _MARKER).write_text(json.dumps({
        "what": "tiny random-weight Wan 2.1 pipeline built by d2f_plugins.video.wan_tiny (frames are noise)",
        "variant": "FLF2V" if flf2v else "I2V", "seed": seed, "resolution": list(TINY_RESOLUTION)}, indent=1))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Build a tiny random-weight Wan 2.1 pipeline (for tests).")
    p.add_argument("out_dir")
    p.add_argument("--flf2v", action="store_true", help="first-last-frame variant (accepts last_image)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(build_tiny_wan(a.out_dir, flf2v=a.flf2v, seed=a.seed))


if __name__ == "__main__":
    main()
