"""The generic transformers backend: ``AutoProcessor`` + ``AutoModelForImageTextToText``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .families import prompt_format_for
from .protocol import GenerationRequest, ModelLoadError, check_single_sample
from .sampling import PerRequestSampling

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto or one of: {', '.join(DTYPES)}") from None


def local_fingerprint(path: Path) -> str:
    """Identity of a local checkpoint: its config and the names, sizes and mtimes of its weights."""
    digest = hashlib.sha256()
    for name in ("config.json", "adapter_config.json"):
        if (path / name).exists():
            digest.update((path / name).read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class TransformersVLM:
    """Any image-text-to-text checkpoint on the Hub or on disk, with per-family prompt formats.

    Requests are generated in left-padded batches of ``batch_size``. ``model_id`` defaults to
    the name or path given; pass a stable name when a local path may move.
    """

    def __init__(
        self,
        name_or_path: str,
        *,
        model_id: str | None = None,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
    ):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.name_or_path = str(name_or_path)
        self.model_id = model_id or self.name_or_path
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size
        common = {"revision": revision, "trust_remote_code": trust_remote_code}
        try:
            # a PEFT adapter directory loads too: transformers reads its base model and applies it
            self.processor = AutoProcessor.from_pretrained(self.name_or_path, **common)
            model_kwargs: dict[str, Any] = {"dtype": self.dtype, **common}
            if attn_implementation:
                model_kwargs["attn_implementation"] = attn_implementation
            self.model = AutoModelForImageTextToText.from_pretrained(self.name_or_path, **model_kwargs)
        except OSError as error:
            raise ModelLoadError(
                f"could not load model {self.name_or_path!r}: {error}\n"
                "If it is a Hub id, this machine may not reach the Hub: download it where the Hub is "
                "reachable (`hf download <id>`) into the Hugging Face cache, or pass a local path "
                "written by save_pretrained."
            ) from error
        except ValueError as error:
            raise ModelLoadError(
                f"could not load model {self.name_or_path!r} as an image-text-to-text model: {error}\n"
                "Custom architectures need --trust-remote-code; text-only models cannot answer images."
            ) from error
        self.model.to(self.device).eval()
        config = self.model.config
        self.model_type = config.model_type
        self.prompt_format = prompt_format_for(self.model_type)
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # save_pretrained does not always keep it
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        self.suppressed_tokens = placeholder_token_ids(config)
        # a torchvision image processor (what AutoProcessor loads where it can) resizes and normalises on
        # the model's device; a PIL one cannot
        image_processor = getattr(self.processor, "image_processor", None)
        self.images_on_device = getattr(image_processor, "backend", None) == "torchvision"
        self.fingerprint = self._fingerprint(config, revision)

    def _fingerprint(self, config: Any, revision: str | None) -> str:
        path = Path(self.name_or_path)
        weights = local_fingerprint(path) if path.is_dir() else getattr(config, "_commit_hash", None) or revision
        identity = {
            "model": self.name_or_path if not path.is_dir() else "local",
            "weights": weights,
            "dtype": str(self.dtype),
            "format": type(self.prompt_format).__name__,
            "suppressed_tokens": self.suppressed_tokens,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """One text per request, in order; each request's settings and seed are honoured. Requests
        are batched by answer length (``max_new_tokens``), then in chunks of ``batch_size``."""
        check_single_sample(requests)
        by_length: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            by_length.setdefault(request.settings.max_new_tokens, []).append(index)
        outputs: list[str] = [""] * len(requests)
        for max_new_tokens, indices in by_length.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for index, text in zip(chunk, self._generate_batch([requests[i] for i in chunk], max_new_tokens)):
                    outputs[index] = text
        return outputs

    def _generate_batch(self, requests: Sequence[GenerationRequest], max_new_tokens: int) -> list[str]:
        processor_inputs = self.prompt_format.processor_inputs(self.processor, requests)
        if self.images_on_device and "images" in processor_inputs:
            processor_inputs["device"] = self.device
        inputs = self.processor(**processor_inputs).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
        if self.suppressed_tokens:
            kwargs["suppress_tokens"] = self.suppressed_tokens
        sampling = PerRequestSampling(requests)
        if sampling.active:
            kwargs["logits_processor"] = [sampling]
        with torch.inference_mode():
            generated = self.model.generate(**inputs, **kwargs)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]

    def __repr__(self) -> str:
        return f"TransformersVLM({self.model_id!r}, family={self.model_type!r}, device={self.device!r})"


PLACEHOLDER_TOKEN_FIELDS = ("image_token_id", "image_token_index", "video_token_id", "video_token_index")


def placeholder_token_ids(config: Any) -> list[int]:
    """The ids that stand for image (and video) features in a prompt. Generated text never holds one:
    trl's GRPOTrainer suppresses the image token while a policy samples, and a checkpoint trained
    without :mod:`auditdm_eval.training.placeholders` drifted towards it (measured: it ranked first at
    72% of first tokens after 1,500 GRPO steps), so decoding without the same suppression started
    probes with it, texts that decode without their first word."""
    ids = {getattr(config, name, None) for name in PLACEHOLDER_TOKEN_FIELDS}
    vocab_size = getattr(config.get_text_config(), "vocab_size", None) or float("inf")
    return sorted(i for i in ids if isinstance(i, int) and 0 <= i < vocab_size)


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
