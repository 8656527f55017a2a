"""Model adapters shared by the audit, the harness plugins and the rectification recipes."""

from .families import PROMPT_FORMATS, ChatTemplateFormat, PaliGemmaFormat, register_prompt_format
from .protocol import GenerationRequest, VisionLanguageModel
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
    "GenerationRequest",
    "ModelLoadError",
    "ModelSpec",
    "PaliGemmaFormat",
    "TransformersVLM",
    "UnknownModelError",
    "VisionLanguageModel",
    "list_models",
    "load_model",
    "register_backend",
    "register_model",
    "register_prompt_format",
    "resolve",
]
