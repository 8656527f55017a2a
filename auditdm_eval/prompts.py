"""The auditor's instruction prompts, verbatim from the paper's supplement (A.1).

``auditdm`` are the prompts p_c, p_e, p_q the trained auditor uses; ``baseline`` are the
prompt-engineering baseline's p_c^b, p_e^b, p_q^b that the failure-search success rate is
compared against. More variants register in :data:`PROMPT_VARIANTS` (or the
``auditdm.prompt_variants`` entry point).
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Registry


@dataclass(frozen=True)
class AuditorPrompts:
    caption: str  # p_c: caption that regenerates the image with small alterations
    edit: str  # p_e: image-editing command
    question: str  # p_q: a new question about the image


PROMPT_VARIANTS: Registry[AuditorPrompts] = Registry("prompt variant", "auditdm.prompt_variants")

AUDITDM_PROMPTS = AuditorPrompts(
    caption=(
        "You are given an image. Produce a detailed, literal caption that would allow a model "
        "to regenerate the image, but also introduce small alterations to certain visual "
        "attributes. Return a single final caption describing the modified version only."
    ),
    edit=(
        "You are given an image. Generate a single image-editing command that describes how to "
        "modify the image. The modification must remain plausible in the real world. The "
        "command should be specific, actionable, and unambiguous. Return the editing command only."
    ),
    question=(
        "You are given an image. Generate a single question that can be answered solely based "
        "on its visible content. Return the question only."
    ),
)
BASELINE_PROMPTS = AuditorPrompts(
    caption=(
        "You are given an image. Produce a detailed, literal caption that would allow a model "
        "to regenerate the image, but introduce small changes that are easy for models to get "
        "wrong. Return a single caption describing the modified version only."
    ),
    edit=(
        "You are given an image. Generate a single image-editing command that makes a realistic "
        "change but is challenging for vision models. The modification must remain plausible in "
        "the real world. The command should be specific, actionable, and unambiguous. Return the "
        "editing command only."
    ),
    question=(
        "You are given an image. Generate a single question answerable from its visible content "
        "but challenging for vision-language models. Return the question only."
    ),
)
PROMPT_VARIANTS.register("auditdm", lambda: AUDITDM_PROMPTS)
PROMPT_VARIANTS.register("baseline", lambda: BASELINE_PROMPTS)


def get_prompts(variant: str) -> AuditorPrompts:
    return PROMPT_VARIANTS.build(variant)
