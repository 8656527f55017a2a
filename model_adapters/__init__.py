"""Model adapters shared by the audit, the harness plugins and the rectification recipes."""

from .families import PROMPT_FORMATS, ChatTemplateFormat, PaliGemmaFormat, register_prompt_format
from .protocol import GREEDY, GenerationRequest, GenerationSettings, VisionLanguageModel, derive_seed, generate_samples
from .registry import (
    BACKENDS,
    MODELS,
    ModelSpec,
    UnknownModelError,
    list_models,
    load_model,
    register_backend,
    register_model,
    resolve,
)
from .transformers_backend import ModelLoadError, TransformersVLM

__all__ = [
    "BACKENDS",
    "MODELS",
    "PROMPT_FORMATS",
    "ChatTemplateFormat",
    "GREEDY",
    "GenerationRequest",
    "GenerationSettings",
    "ModelLoadError",
    "ModelSpec",
    "PaliGemmaFormat",
    "TransformersVLM",
    "UnknownModelError",
    "VisionLanguageModel",
    "derive_seed",
    "generate_samples",
    "list_models",
    "load_model",
    "register_backend",
    "register_model",
    "register_prompt_format",
    "resolve",
]
