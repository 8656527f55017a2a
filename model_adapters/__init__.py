"""Model adapters shared by the audit, the harness plugins and the rectification recipes."""

from .families import PROMPT_FORMATS, ChatTemplateFormat, PaliGemmaFormat, register_prompt_format
from .protocol import (
    GREEDY,
    GenerationRequest,
    GenerationSettings,
    ModelLoadError,
    VisionLanguageModel,
    derive_seed,
    generate_samples,
)
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


def __getattr__(name: str):
    if name == "TransformersVLM":  # imported on use: torch and transformers take seconds
        from .transformers_backend import TransformersVLM

        return TransformersVLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "GREEDY",
    "MODELS",
    "PROMPT_FORMATS",
    "ChatTemplateFormat",
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
