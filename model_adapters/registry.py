"""Model names -> adapters.

A model is given as a registered name (``gemma3-4b``), a local directory written by
``save_pretrained``, or a Hub id (``org/name``). Registered names map to a Hub id or to a
builder of a tiny random checkpoint (used by the tests and the embedded default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import VisionLanguageModel

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class UnknownModelError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and which backend loads it."""

    name: str
    path: str | None = None  # Hub id or local path; None when ``build`` makes it
    build: Callable[[Path], Path] | None = None  # builds a local checkpoint under a cache root
    backend: str = "transformers"
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def transformers_vlm(*args: Any, **kwargs: Any) -> VisionLanguageModel:
    from .transformers_backend import TransformersVLM  # imported on use: torch and transformers take seconds

    return TransformersVLM(*args, **kwargs)


BACKENDS: dict[str, Callable[..., VisionLanguageModel]] = {"transformers": transformers_vlm}
MODELS: dict[str, ModelSpec] = {}
# name prefix -> spec factory, for families of names no list can hold (``world-target:<module>:<function>``)
PREFIXES: dict[str, Callable[[str], ModelSpec]] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def register_backend(name: str, factory: Callable[..., VisionLanguageModel]) -> None:
    BACKENDS[name] = factory


def register_prefix(prefix: str, factory: Callable[[str], ModelSpec]) -> None:
    """Names starting with ``prefix`` resolve to ``factory(name)`` (which raises ValueError for a bad name)."""
    PREFIXES[prefix] = factory


def auditdm_home() -> Path:
    """Where auditdm keeps what it builds and caches: $AUDITDM_HOME, else ~/.cache/auditdm."""
    return Path(os.environ.get("AUDITDM_HOME", Path.home() / ".cache" / "auditdm"))


def tiny_root() -> Path:
    return auditdm_home() / "tiny"


def _hub(name: str, path: str, description: str) -> None:
    register_model(ModelSpec(name=name, path=path, description=description))


_hub("paligemma2-3b-448", "google/paligemma2-3b-pt-448", "PaliGemma2 3B, 448px (the paper's main target)")
_hub("paligemma2-10b-448", "google/paligemma2-10b-pt-448", "PaliGemma2 10B, 448px")
_hub("paligemma2-28b-448", "google/paligemma2-28b-pt-448", "PaliGemma2 28B, 448px")
_hub("gemma3-4b", "google/gemma-3-4b-it", "Gemma3 4B instruction-tuned (the paper's auditor base)")
_hub("gemma3-12b", "google/gemma-3-12b-it", "Gemma3 12B instruction-tuned")
_hub("gemma3-27b", "google/gemma-3-27b-it", "Gemma3 27B instruction-tuned")
_hub("qwen2.5-vl-3b", "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL 3B instruct")
_hub("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL 7B instruct")


def _build_tiny(name: str, seed: int, root: Path) -> Path:
    from . import tiny  # imported on use: building needs diffusers and tokenizers trainers

    return tiny.ensure_tiny(name, root, seed)


def _register_tiny() -> None:
    for name in ("tiny-gemma3", "tiny-paligemma2", "tiny-qwen2.5-vl"):
        for seed in range(4):
            register_model(
                ModelSpec(
                    name=f"{name}" if seed == 0 else f"{name}-seed{seed}",
                    build=lambda root, name=name, seed=seed: _build_tiny(name, seed, root),
                    description=f"tiny RANDOM {name[5:]} built from a config (seed {seed}): for tests and demos",
                )
            )


_register_tiny()


def _register_random_real() -> None:
    from .random_real import REAL_ARCHITECTURES

    def build(root: Path, name: str) -> Path:
        from .random_real import ensure_random_real  # imported on use: building needs torch and transformers

        return ensure_random_real(name, root)

    for name, architecture in REAL_ARCHITECTURES.items():
        register_model(
            ModelSpec(
                name=f"random-{name}",
                build=lambda root, name=name: build(root, name),
                description=f"RANDOM weights at the real size of {architecture.hub_id}: for timing, built on first use",
            )
        )


_register_random_real()


def resolve(name_or_path: str) -> tuple[str, ModelSpec]:
    """Return (path to load, spec) for a registered name, a local directory or a Hub id."""
    if name_or_path in MODELS:
        spec = MODELS[name_or_path]
        path = str(spec.build(tiny_root())) if spec.build is not None else spec.path
        assert path is not None
        return path, spec
    for prefix, factory in PREFIXES.items():
        if name_or_path.startswith(prefix):
            try:
                spec = factory(name_or_path)
            except ValueError as error:
                raise UnknownModelError(f"cannot load model {name_or_path!r}: {error}") from error
            return spec.path or name_or_path, spec
    local = Path(name_or_path).expanduser()
    if local.exists():
        if not any((local / marker).is_file() for marker in ("config.json", "adapter_config.json")):
            raise UnknownModelError(
                f"model {name_or_path!r} is a local path but has no config.json (nor a PEFT adapter_config.json): "
                "pass the directory that save_pretrained wrote (config or adapter, weights and processor files)"
            )
        return str(local), ModelSpec(name=name_or_path, path=str(local))
    if HUB_ID.match(name_or_path):
        return name_or_path, ModelSpec(name=name_or_path, path=name_or_path)
    known = ", ".join(sorted(MODELS))
    raise UnknownModelError(
        f"unknown model {name_or_path!r}: it is not a registered name, not an existing local directory "
        f"and not a Hub id of the form org/name. Registered names: {known}. Pass a Hub id, a local "
        "path written by save_pretrained, or register a name with model_adapters.register_model."
    )


def load_model(name_or_path: str, **kwargs: Any) -> VisionLanguageModel:
    """Load any model by registered name, local path or Hub id through its backend."""
    path, spec = resolve(name_or_path)
    factory = BACKENDS[spec.backend]
    options = {**spec.kwargs, **kwargs}
    options.setdefault("model_id", name_or_path)
    return factory(path, **options)


def list_models() -> list[ModelSpec]:
    return [MODELS[name] for name in sorted(MODELS)]
