"""Ground truth for records: what an image shows and what a question's true answer is.

:func:`ground_truth` reads the scene from the image's pixels (as the oracle does), so it holds for
original, regenerated and edited images alike: precision of an audit is measured, not assumed.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from .decode import decode
from .language import answer, parse_question
from .scene import Scene

# the project's failure types (auditdm_eval.failure_types) each world question type exercises:
# the world knows a question's type, so a report need not guess it from the wording
FAILURE_TYPE: dict[str, str] = {
    "color": "color recognition",
    "shape": "shape recognition",
    "size": "size comparison",
    "count": "counting",
    "position": "spatial relationship",
    "relation": "spatial relationship",
    "existence": "hallucination avoidance",
    "attribute_at_position": "attribute verification",
    "clock": "clock reading",
    "text": "small text recognition",
}
ATTRIBUTE_FAILURE_TYPE = {"color": "color recognition", "shape": "shape recognition", "size": "size comparison"}


def failure_type(question: str) -> str | None:
    """The failure type a world question exercises (None when the world does not understand it)."""
    query = parse_question(question)
    if query is None:
        return None
    if query.qtype == "attribute_at_position":
        return ATTRIBUTE_FAILURE_TYPE[query.attribute or "color"]
    return FAILURE_TYPE[query.qtype]


def ground_truth(image: Image.Image | Scene, question: str | None = None) -> dict[str, Any]:
    """``{"scene": decoded scene (JSON-able) or None, "answer": true answer or None, "question_type": ...,
    "answer_kind": ..., "failure_type": ...}``.

    ``answer`` is None when the image is no world scene, the question is not one the world
    understands, or it does not apply to the scene (its description picks out no object or several).
    """
    scene = image if isinstance(image, Scene) else decode(image)
    query = parse_question(question) if question else None
    truth = answer(query, scene) if query is not None and scene is not None else None
    return {
        "scene": None if scene is None else scene.to_dict(),
        "answer": truth,
        "question_type": None if query is None else query.qtype,
        "answer_kind": None if query is None else query.answer_kind,
        "failure_type": None if query is None or not question else failure_type(question),
    }
