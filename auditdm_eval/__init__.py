"""AuditDM: discover where a target VLM disagrees with a reference ensemble, and record it."""

from .config import AuditConfig
from .judge import AGREEMENT_RULES, REWARDS, Judge
from .matching import MATCHERS, build_matcher, normalize_answer
from .prompts import PROMPT_VARIANTS, get_prompts
from .records import FEATURES, Answer, AuditRecord, Probe, SourceImage, Verdict
from .store import AuditStore, load_audit
from .world.integration import install as _install_world

_install_world()

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
