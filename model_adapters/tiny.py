"""Tiny RANDOM checkpoints of real architectures, built offline from configs.

For tests and the embedded demo: each builder makes a model of the real class (Gemma3,
PaliGemma2, Qwen2.5-VL, Flux, Flux-Kontext) with a locally trained BPE tokenizer and the
family's real processor, saves it with ``save_pretrained``, and returns the directory, which
then loads through exactly the code a real checkpoint goes through. Same seed, same weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

WORDS = (
    "the a an is are what how many which where who why colour color red green blue yellow black white brown "
    "orange pink purple grey cat dog horse bird car bus bike person man woman child tree house sky cloud sun "
    "water road table chair cup book clock sign text number one two three four five six seven eight nine ten "
    "yes no left right top bottom front behind next to on in under over near small large big tall short round "
    "square old new wooden metal glass plastic sitting standing running eating holding wearing looking image "
    "picture photo question answer caption edit make change add remove replace turn into with and of for it "
    "this that there rocket coffee astronaut coin page street room window door light dark"
).split()
CORPUS = [" ".join(WORDS[i : i + 9]) for i in range(len(WORDS))] * 3
COMPLETE = ".complete"


def build_tokenizer(special_tokens: list[str], extra_special_tokens: dict[str, str] | None = None, **kwargs):
    """A BPE tokenizer trained on a small English word list, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=special_tokens, show_progress=False))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        padding_side="left",
        extra_special_tokens=extra_special_tokens or {},
        **kwargs,
    )


def _tiny_text(vocab_size: int, **extra) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        **extra,
    )


def _finish(model, tokenizer, eos_ids: list[int], processor, out_dir: Path) -> Path:
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos_ids
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def build_tiny_gemma3(out_dir: str | Path, seed: int = 0) -> Path:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    tokenizer = build_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"],
        {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"},
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, do_pan_and_scan=False)
    # mm_tokens_per_image must be a square that divides the (32/8)^2 patch grid
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE, image_seq_length=4)
    ids = tokenizer.convert_tokens_to_ids
    eos_ids = [tokenizer.eos_token_id, ids("<end_of_turn>")]
    config = Gemma3Config(
        text_config=_tiny_text(len(tokenizer), head_dim=16, sliding_window=64, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_ids),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        mm_tokens_per_image=4,
        image_token_index=ids("<image_soft_token>"),
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
    )
    torch.manual_seed(seed)
    return _finish(Gemma3ForConditionalGeneration(config).eval(), tokenizer, eos_ids, processor, Path(out_dir))


def build_tiny_paligemma2(out_dir: str | Path, seed: int = 0) -> Path:
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessorPil

    tokenizer = build_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>", "<image>"], pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16  # (32 / 8)^2 patches
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    tokenizer = processor.tokenizer  # the processor adds the 1,152 <loc>/<seg> tokens: size the vocab after it
    vocab = len(tokenizer)
    config = PaliGemmaConfig(
        text_config=dict(model_type="gemma2", head_dim=16, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **_tiny_text(vocab)),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=32,
        hidden_size=32,
        vocab_size=vocab,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return _finish(PaliGemmaForConditionalGeneration(config).eval(), tokenizer, [tokenizer.eos_token_id], processor, Path(out_dir))


QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2_5_vl(out_dir: str | Path, seed: int = 0) -> Path:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessorPil,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tokenizer(
        ["<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<unk>"],
        {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
        pad_token="<pad>",
        eos_token="<|im_end|>",
    )
    # few pixels -> few patches: 2x2 to 4x4 merged tokens per image
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        # mrope_section must sum to head_dim / 2 = (32 / 2) / 2
        text_config=_tiny_text(len(tokenizer), rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, pad_token_id=tokenizer.pad_token_id, bos_token_id=None, eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[0]),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return _finish(Qwen2_5_VLForConditionalGeneration(config).eval(), tokenizer, [tokenizer.eos_token_id], processor, Path(out_dir))


def _flux_components(seed: int) -> dict:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tokenizer = build_tokenizer(["<pad>", "</s>", "<s>", "<unk>"], pad_token="<pad>", eos_token="</s>", bos_token="<s>", model_max_length=77)
    t5_tokenizer = build_tokenizer(["<pad>", "</s>", "<s>", "<unk>"], pad_token="<pad>", eos_token="</s>", model_max_length=512)
    vocab = len(clip_tokenizer)
    torch.manual_seed(seed)
    return dict(
        # in_channels = 4 x VAE latent channels (2x2 packing); rope axes sum to the head dim
        transformer=FluxTransformer2DModel(
            patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 6, 6],
        ),
        text_encoder=CLIPTextModel(
            CLIPTextConfig(
                vocab_size=vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                projection_dim=32, max_position_embeddings=77, bos_token_id=clip_tokenizer.bos_token_id,
                eos_token_id=clip_tokenizer.eos_token_id, pad_token_id=clip_tokenizer.pad_token_id,
            )
        ),
        tokenizer=clip_tokenizer,
        text_encoder_2=T5EncoderModel(
            T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, decoder_start_token_id=0, pad_token_id=t5_tokenizer.pad_token_id)
        ),
        tokenizer_2=t5_tokenizer,
        vae=AutoencoderKL(
            sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1, latent_channels=4,
            norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
            down_block_types=["DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D"],
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def build_tiny_flux(out_dir: str | Path, seed: int = 0) -> Path:
    from diffusers import FluxPipeline

    FluxPipeline(**_flux_components(seed)).save_pretrained(out_dir)
    return Path(out_dir)


def build_tiny_flux_kontext(out_dir: str | Path, seed: int = 0) -> Path:
    from diffusers import FluxKontextPipeline

    FluxKontextPipeline(**_flux_components(seed)).save_pretrained(out_dir)
    return Path(out_dir)


TINY_BUILDERS: dict[str, Callable[[str | Path, int], Path]] = {
    "tiny-gemma3": build_tiny_gemma3,
    "tiny-paligemma2": build_tiny_paligemma2,
    "tiny-qwen2.5-vl": build_tiny_qwen2_5_vl,
    "tiny-flux": build_tiny_flux,
    "tiny-flux-kontext": build_tiny_flux_kontext,
}


def ensure_tiny(name: str, root: str | Path, seed: int = 0) -> Path:
    """Build ``name`` under ``root`` once; later calls return the finished directory."""
    if name not in TINY_BUILDERS:
        raise KeyError(f"no tiny builder {name!r}; choose one of: {', '.join(TINY_BUILDERS)}")
    target = Path(root) / f"{name}-seed{seed}"
    if (target / COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        TINY_BUILDERS[name](staging, seed)
        (staging / COMPLETE).write_text("built by model_adapters.tiny\n")
        if target.exists():  # an earlier build that never finished
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
