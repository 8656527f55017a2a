"""Tiny RANDOM checkpoints of real architectures, built offline from configs.

For tests and the embedded demo: each builder makes a model of the real class (Gemma3,
PaliGemma2, Qwen2.5-VL, Flux, Flux-Kontext) with tokenizers trained here on a small English
word list and the family's real processor, saves it with ``save_pretrained`` and returns the
directory, which then loads through exactly the code a real checkpoint goes through.
Same seed, same weights; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .sizes import Sizes

WORD_LIST = """
the a an is are was be it this that these those there here of in on at to from with by for and or
but not no yes what how many much which where who why when whose does do can color colour shape size
red green blue yellow black white brown orange pink purple grey gray gold silver dark light bright
zero one two three four five six seven eight nine ten eleven twelve first second third several some all
cat dog horse bird cow sheep bear elephant zebra giraffe fish mouse rabbit duck chicken lion tiger monkey
person man woman boy girl child baby people player team crowd face hand hair eye head arm leg
car bus truck bike bicycle motorcycle train plane boat road street sign light traffic
table chair sofa bed desk lamp cup mug bowl plate fork knife spoon bottle glass vase clock book phone laptop
screen keyboard window door wall floor roof room kitchen bathroom house building tower bridge fence
tree flower grass leaf plant sky cloud sun moon star water sea river lake beach sand snow rain mountain hill
field park garden food pizza cake apple banana orange sandwich bread coffee tea milk
shirt hat cap coat dress shoe bag umbrella ball kite frisbee racket skateboard surfboard ski
left right top bottom front back behind next near far above below under over inside outside between middle
small large big little tall short long wide round square flat old new young wooden metal plastic stone paper
sitting standing running walking eating drinking holding wearing looking playing riding flying jumping
sleeping reading writing driving parked open closed empty full wet dry hot cold happy sad
image picture photo scene question answer caption describe detail text word letter number count
edit make change add remove replace turn into show keep same style more less only also very
rocket astronaut coin page moon planet space robot user model assistant system en caption detect segment
"""
WORDS = tuple(dict.fromkeys(WORD_LIST.split()))  # unique, in order
CORPUS = [" ".join(WORDS[i : i + 8]) for i in range(0, len(WORDS), 3)] + [" ".join(WORDS)]
ALPHABET = list(string.ascii_letters + string.digits + string.punctuation + "\n")
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
WORD_START = "\u2581"  # Metaspace's marker for a space before a word
COMPLETE = ".complete"
# a 32px SigLIP tower: (32 / 8) ** 2 = 16 patches
SIGLIP_32 = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
    "image_size": 32, "patch_size": 8,
}


def _vlm_tokenizer(extra_special_tokens: list[str], named_tokens: dict[str, str], words: tuple[str, ...] = WORDS):
    """Word-level BPE over ``words`` (each word one token, unknown words spelled in characters), wrapped
    with pad/bos/eos/unk and the given special tokens (``named_tokens`` also set as tokenizer attributes)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK, *extra_special_tokens]
    pieces = [*specials, WORD_START, *ALPHABET, *(WORD_START + w for w in words)]
    # ignore_merges: a word in the vocab is one token; anything else falls back to its characters
    vocab = {piece: i for i, piece in enumerate(pieces)}
    backend = Tokenizer(models.BPE(vocab, [], unk_token=UNK, fuse_unk=True, ignore_merges=True))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", "isolated"), pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()]
    )
    backend.decoder = decoders.Metaspace()
    backend.add_special_tokens(specials)
    named = {"extra_special_tokens": named_tokens} if named_tokens else {}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK, padding_side="left",
        **named,
    )
    unnamed = [t for t in extra_special_tokens if t not in named_tokens.values()]
    if unnamed:
        tokenizer.add_special_tokens({"extra_special_tokens": unnamed})
    return tokenizer


def build_tokenizer(extra_special_tokens: list[str] | None = None):
    """A word-level BPE tokenizer over a small English word list, as a left-padding PreTrainedTokenizerFast."""
    return _vlm_tokenizer(list(extra_special_tokens or []), {})


def _clip_tokenizer():
    """A CLIPTokenizer whose byte-level BPE vocab and merges are trained on CORPUS."""
    from tokenizers import pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    backend = CLIPTokenizer().backend_tokenizer  # CLIP's own normaliser and pre-tokeniser
    specials = ["<|startoftext|>", "<|endoftext|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=specials, initial_alphabet=alphabet, end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(pair) for pair in model["merges"]]
    return CLIPTokenizer(vocab=model["vocab"], merges=merges, model_max_length=77)


def _t5_tokenizer():
    """A T5Tokenizer whose Unigram vocab is trained on CORPUS (no <extra_id_*> tokens)."""
    from tokenizers import trainers
    from transformers import T5Tokenizer

    backend = T5Tokenizer(extra_ids=0).backend_tokenizer  # T5's own Metaspace pre-tokeniser
    trainer = trainers.UnigramTrainer(
        vocab_size=600, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", initial_alphabet=ALPHABET,
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    vocab = [tuple(piece) for piece in json.loads(backend.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def _seeded(seed: int, make: Callable, device: str = "cpu"):
    """``make()`` on ``device`` right after ``torch.manual_seed(seed)``, leaving the caller's CPU RNG state alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            return make()


TINY_TEXT = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
    "max_position_embeddings": 1024,
}
TINY_SIZES = {
    "gemma3": Sizes({**TINY_TEXT, "head_dim": 16, "sliding_window": 64}, SIGLIP_32, image_size=32, image_tokens=4),
    "paligemma2": Sizes(
        {**TINY_TEXT, "head_dim": 16}, SIGLIP_32, image_size=32, image_tokens=16, top={"projection_dim": 32, "hidden_size": 32}
    ),
    # mrope_section sums to head_dim / 2 = (32 / 2) / 2; 112 px: at most (112 / 28) ** 2 = 16 image tokens
    "qwen2.5-vl": Sizes(
        {**TINY_TEXT, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}},
        {
            "depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
            "fullatt_block_indexes": [0],
        },
        image_size=112,
    ),
}


def _text_config(sizes: Sizes, tokenizer, eos_ids: list[int]) -> dict:
    """The decoder's config: ``sizes.text`` with the tokenizer's vocabulary and ids."""
    return {
        **sizes.text,
        "vocab_size": sizes.vocab_size or len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": eos_ids,
    }


def _speak_words(model, tokenizer, also_keep: list[int] | tuple[int, ...] = ()) -> None:
    """Zero the embedding rows of every token that is not a whole word (the vocabulary beyond the
    tokenizer's too), so that greedy decoding of the random model (whose word logits are random, the
    rest 0) reads as words; the rows of ``also_keep`` stay as they are."""
    words = [i for piece, i in tokenizer.get_vocab().items() if piece.startswith(WORD_START) and piece[1:].isalpha()]
    rows = model.get_input_embeddings().weight.shape[0]
    keep = torch.zeros(rows, dtype=torch.bool, device=model.get_input_embeddings().weight.device)
    keep[words] = True
    keep[list(also_keep)] = True
    with torch.no_grad():
        for embedding in (model.get_input_embeddings(), model.get_output_embeddings()):
            embedding.weight[~keep] = 0.0


def _save_vlm(model, processor, eos_ids: list[int], out_dir: str | Path, answer_ends: list[int] | None = None,
              keep_rows: list[int] | tuple[int, ...] = ()) -> Path:
    """Save model and processor with pad and the ids that end an answer (default: ``eos_ids``) in the generation config;
    embedding rows are zeroed as :func:`_speak_words` says, but for ``keep_rows``."""
    out_dir = Path(out_dir)
    _speak_words(model, processor.tokenizer, keep_rows)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = answer_ends or eos_ids
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


def gemma3_parts(sizes: Sizes, seed: int, words: tuple[str, ...] = WORDS, device: str = "cpu"):
    """(Gemma3ForConditionalGeneration, its processor, its end-of-turn ids), random weights of ``sizes``."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    named = {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}
    tokenizer = _vlm_tokenizer(["<start_of_turn>", "<end_of_turn>", *named.values()], named, words)
    side = {"height": sizes.image_size, "width": sizes.image_size}
    image_processor = Gemma3ImageProcessorPil(size=side, do_pan_and_scan=False)
    # image_seq_length (mm_tokens_per_image) must be a square whose side divides the patch grid's side
    processor = Gemma3Processor(image_processor, tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE, image_seq_length=sizes.image_tokens)
    eos_ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")]
    config = Gemma3Config(
        text_config=_text_config(sizes, tokenizer, eos_ids),
        vision_config=sizes.vision,
        mm_tokens_per_image=sizes.image_tokens,
        image_token_index=tokenizer.image_token_id,
        boi_token_index=tokenizer.boi_token_id,
        eoi_token_index=tokenizer.eoi_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        **sizes.top,
    )
    model = _seeded(seed, lambda: Gemma3ForConditionalGeneration(config), device)
    return model, processor, eos_ids


def paligemma2_parts(sizes: Sizes, seed: int, words: tuple[str, ...] = WORDS, device: str = "cpu"):
    """(PaliGemmaForConditionalGeneration with a Gemma2 decoder, its processor, its end ids), random weights of ``sizes``."""
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    tokenizer = _vlm_tokenizer(["<image>"], {"image_token": "<image>"}, words)
    image_processor = SiglipImageProcessorPil(size={"height": sizes.image_size, "width": sizes.image_size})
    image_processor.image_seq_length = sizes.image_tokens
    processor = PaliGemmaProcessor(image_processor, tokenizer)  # adds 1,152 <loc>/<seg> tokens: size the vocab after
    eos_ids = [tokenizer.eos_token_id]
    text = _text_config(sizes, tokenizer, eos_ids)
    config = PaliGemmaConfig(
        text_config={**text, "model_type": "gemma2"},
        vision_config=sizes.vision,
        image_token_index=tokenizer.image_token_id,
        vocab_size=text["vocab_size"],
        pad_token_id=tokenizer.pad_token_id,
        **sizes.top,
    )
    model = _seeded(seed, lambda: PaliGemmaForConditionalGeneration(config), device)
    return model, processor, eos_ids


QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen2_5_vl_parts(sizes: Sizes, seed: int, words: tuple[str, ...] = WORDS, device: str = "cpu"):
    """(Qwen2_5_VLForConditionalGeneration, its processor, its end ids), random weights of ``sizes``."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessorPil,
        Qwen2VLVideoProcessor,
    )

    named = {
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "vision_start_token": "<|vision_start|>",
        "vision_end_token": "<|vision_end|>",
    }
    tokenizer = _vlm_tokenizer(["<|im_start|>", "<|im_end|>", *named.values()], named, words)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=sizes.image_size**2)
    processor = Qwen2_5_VLProcessor(image_processor, tokenizer, Qwen2VLVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE)
    eos_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id]
    config = Qwen2_5_VLConfig(
        text_config=_text_config(sizes, tokenizer, eos_ids),
        vision_config=sizes.vision,
        image_token_id=tokenizer.image_token_id,
        video_token_id=tokenizer.video_token_id,
        vision_start_token_id=tokenizer.vision_start_token_id,
        vision_end_token_id=tokenizer.vision_end_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        **sizes.top,
    )
    model = _seeded(seed, lambda: Qwen2_5_VLForConditionalGeneration(config), device)
    return model, processor, eos_ids


VLM_FAMILIES: dict[str, Callable[..., tuple[Any, Any, list[int]]]] = {
    "gemma3": gemma3_parts,
    "paligemma2": paligemma2_parts,
    "qwen2.5-vl": qwen2_5_vl_parts,
}


def build_vlm(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny random ``family`` VLM and save it to ``out_dir``."""
    model, processor, eos_ids = VLM_FAMILIES[family](TINY_SIZES[family], seed)
    return _save_vlm(model.eval(), processor, eos_ids, out_dir)


def build_tiny_gemma3(out_dir: str | Path, seed: int = 0) -> Path:
    """Gemma3ForConditionalGeneration with a 32px SigLIP tower and 4 soft tokens per image."""
    return build_vlm("gemma3", out_dir, seed)


def build_tiny_paligemma2(out_dir: str | Path, seed: int = 0) -> Path:
    """PaliGemmaForConditionalGeneration (Gemma2 text) with a 32px SigLIP tower, 16 image tokens."""
    return build_vlm("paligemma2", out_dir, seed)


def build_tiny_qwen2_5_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """Qwen2_5_VLForConditionalGeneration with a one-block vision tower; images become 4-16 tokens."""
    return build_vlm("qwen2.5-vl", out_dir, seed)


def _flux_components(seed: int) -> dict:
    """Tiny Flux transformer, CLIP + T5 encoders and tokenizers, 2x-downsampling VAE, scheduler."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tokenizer, t5_tokenizer = _clip_tokenizer(), _t5_tokenizer()
    clip_config = CLIPTextConfig(
        vocab_size=len(clip_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, projection_dim=32, max_position_embeddings=77, bos_token_id=clip_tokenizer.bos_token_id,
        eos_token_id=clip_tokenizer.eos_token_id, pad_token_id=clip_tokenizer.pad_token_id,
    )
    t5_config = T5Config(
        vocab_size=len(t5_tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
        pad_token_id=t5_tokenizer.pad_token_id, eos_token_id=t5_tokenizer.eos_token_id, decoder_start_token_id=0,
    )

    def make() -> dict:
        return {
            # in_channels = 4 x VAE latent channels (2x2 packing); rope axes sum to the head dim
            "transformer": FluxTransformer2DModel(
                patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 6, 6],
            ),
            "text_encoder": CLIPTextModel(clip_config),
            "text_encoder_2": T5EncoderModel(t5_config),
            "vae": AutoencoderKL(
                in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), layers_per_block=1,
                down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, norm_num_groups=4,
                sample_size=32, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                scaling_factor=1.5035,
            ),
        }

    tokenizers = {"tokenizer": clip_tokenizer, "tokenizer_2": t5_tokenizer}
    return {**_seeded(seed, make), **tokenizers, "scheduler": FlowMatchEulerDiscreteScheduler()}


def build_tiny_flux(out_dir: str | Path, seed: int = 0) -> Path:
    """A text-to-image FluxPipeline."""
    from diffusers import FluxPipeline

    FluxPipeline(**_flux_components(seed)).save_pretrained(out_dir)
    return Path(out_dir)


def build_tiny_flux_kontext(out_dir: str | Path, seed: int = 0) -> Path:
    """An image-editing FluxKontextPipeline (no IP-adapter image encoder)."""
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


def build_once(target: Path, build: Callable[[Path], Any], built_by: str) -> Path:
    """``build(staging)`` into a temporary folder beside ``target``, then move it into place, once:
    later calls (and concurrent processes racing the same build) return the finished directory,
    and a folder left by a build that never finished is rebuilt."""
    if (target / COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        (staging / COMPLETE).write_text(f"built by {built_by}\n")
        if target.exists() and not (target / COMPLETE).exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished the same build first
            if not (target / COMPLETE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_tiny(name: str, root: str | Path, seed: int = 0) -> Path:
    """Build ``name`` into ``root/{name}-seed{seed}`` once; later calls return the finished directory."""
    if name not in TINY_BUILDERS:
        raise KeyError(f"no tiny builder {name!r}; choose one of: {', '.join(TINY_BUILDERS)}")
    return build_once(Path(root) / f"{name}-seed{seed}", lambda staging: TINY_BUILDERS[name](staging, seed), "model_adapters.tiny")
