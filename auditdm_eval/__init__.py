"""AuditDM: discover where a target VLM disagrees with a reference ensemble, and record it."""

from .config import AuditConfig
from .judge import AGREEMENT_RULES, REWARDS, Judge
from .matching import MATCHERS, build_matcher, normalize_answer
from .prompts import PROMPT_VARIANTS, get_prompts
from .records import Answer, AuditRecord, Probe, SourceImage, Verdict
from .world.integration import install as _install_world

_install_world()

# imported on use: they need ``datasets``, which takes a second or two to import (a CLI's --help should not wait)
_LAZY = {"FEATURES": "records", "AuditStore": "store", "load_audit": "store"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AGREEMENT_RULES",
    "REWARDS",
    "FEATURES",
    "MATCHERS",
    "PROMPT_VARIANTS",
    "Answer",
    "AuditConfig",
    "AuditRecord",
    "AuditStore",
    "Judge",
    "Probe",
    "SourceImage",
    "Verdict",
    "build_matcher",
    "get_prompts",
    "load_audit",
    "normalize_answer",
]
