"""Failure types: a transparent rule set over the question (and answers), first match wins.

The types follow the paper's Figure 4 and supplement (world knowledge, clock reading, size
comparison, action recognition, sign understanding, small text recognition, material
recognition, ...) plus a few common VQA categories, 22 in all. Rules are ordered from the most
specific to the most generic; a probe no rule claims is ``other``, which an optional
embedding classifier (:class:`EmbeddingTypeClassifier`) can place by similarity instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

OTHER = "other"


@dataclass(frozen=True)
class FailureRule:
    name: str
    description: str  # what the type covers; also the text the embedding classifier compares with
    question: str  # regex on the lower-cased question
    answers: str | None = None  # optional regex that one of the consensus answers must match too


def _words(*words: str) -> str:
    return r"\b(" + "|".join(words) + r")\b"


RULES: tuple[FailureRule, ...] = (
    FailureRule("clock reading", "reading the time shown on a clock or watch", r"\bwhat time\b|\bclock\b|\bwatch\b.*\btime\b|\btime\b.*\b(clock|watch)\b"),
    FailureRule("counting", "counting how many objects there are", _words("how many", "number of", "count", "how much")),
    FailureRule("small text recognition", "reading text, words, letters or numbers written in the image", _words("say", "says", "written", "text", "read", "word", "words", "letter", "letters", "title", "label", "brand", "spell", "printed")),
    FailureRule("sign understanding", "understanding signs, traffic lights and signals", _words("sign", "signs", "signal", "traffic light", "arrow")),
    FailureRule("hallucination avoidance", "saying whether something is present at all, without inventing it", r"^(is|are) there\b|\b(does|do) (the|this) (image|picture|photo) (show|contain|have)\b|\bany\b.*\b(in|on) (the|this) (image|picture|photo)\b"),
    FailureRule("color recognition", "recognising the colour of objects", _words("colou?r", "colou?rs", "colou?red", "hue", "shade")),
    FailureRule("size comparison", "comparing sizes: bigger, smaller, taller", _words("bigger", "larger", "smaller", "taller", "shorter", "size", "biggest", "largest", "smallest", "tallest", "longer", "wider")),
    FailureRule("material recognition", "recognising what things are made of", r"\bmade (of|from|out of)\b|" + _words("material", "materials", "fabric", "wooden", "metal", "metallic", "plastic", "glass", "leather", "stone", "concrete")),
    FailureRule("shape recognition", "recognising the shape of objects", _words("shape", "shaped", "round", "square", "circular", "rectangular", "triangular", "oval")),
    FailureRule("orientation", "the orientation or facing direction of objects", _words("facing", "orientation", "upside down", "direction", "pointing", "tilted", "rotated", "sideways", "horizontal", "vertical")),
    FailureRule("spatial relationship", "where objects are relative to each other", _words("left", "right", "above", "below", "behind", "in front of", "next to", "on top of", "under", "underneath", "beneath", "between", "near", "beside", "closest", "farthest")),
    FailureRule("emotion and atmosphere", "emotions, mood, atmosphere and weather", _words("emotion", "mood", "feel", "feeling", "happy", "sad", "angry", "expression", "weather", "sunny", "rainy", "cloudy", "snowy", "atmosphere", "season")),
    FailureRule("action recognition", "recognising what people or animals are doing", r"\bdoing\b|" + _words("action", "activity", "playing", "eating", "riding", "running", "walking", "jumping", "throwing", "catching", "sitting", "standing", "sleeping", "drinking", "cooking")),
    FailureRule("object relationship", "how objects relate: holding, wearing, using, belonging", _words("holding", "wearing", "carrying", "using", "attached", "connected", "belong", "belongs", "inside", "contains")),
    FailureRule("scene recognition", "what kind of place or scene the image shows", r"\bwhere (is|was|are) (this|the) (photo|picture|image)\b|\bwhat (kind|type) of (place|room|scene|building|area)\b|" + _words("indoors", "outdoors", "indoor", "outdoor", "location", "room", "city", "beach", "kitchen")),
    FailureRule("species and category recognition", "what kind, breed or species something is", r"\bwhat (kind|type|breed|species|sort|variety) of\b|\bwhat animal\b"),
    FailureRule("world knowledge", "knowledge beyond the pixels: purpose, origin, history, brands", r"\bwhy\b|\bused for\b|\bpurpose\b|" + _words("country", "famous", "invented", "history", "historical", "team", "sport", "cuisine", "capital", "language", "year")),
    FailureRule("person attributes", "age, gender, clothing and appearance of people", _words("man", "woman", "boy", "girl", "person", "people", "child", "age", "old", "young", "gender", "hair", "beard")),
    FailureRule("small object detection", "finding small or partly hidden objects", _words("small", "tiny", "little", "distant", "far away", "background", "partially", "hidden")),
    FailureRule("distraction avoidance", "answering despite distracting or misleading details", _words("despite", "although", "even though", "ignore", "actually", "really", "real", "fake", "reflection", "mirror", "poster", "painting", "toy")),
    # a yes/no question the references answer "no": saying "yes" invents what is not there
    FailureRule("hallucination avoidance", "saying whether something is present at all, without inventing it", r"^(is|are|does|do|can)\b", answers=r"^no\b"),
    FailureRule("object recognition", "naming what an object is", r"^what (is|are) (this|that|these|those|the)\b|\bwhat object\b|\bwhich object\b|\bname\b"),
    FailureRule("attribute verification", "yes/no checks of an object's attributes", r"^(is|are|does|do|can|was|were|has|have)\b"),
)
TYPE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(rule.name for rule in RULES)) + (OTHER,)
_COMPILED = [(rule, re.compile(rule.question), re.compile(rule.answers) if rule.answers else None) for rule in RULES]


def classify(question: str, answers: Sequence[str] = ()) -> str:
    """The first rule whose question pattern (and, if it has one, answer pattern on the
    consensus ``answers``) matches; else ``other``."""
    text = " ".join(question.lower().split())
    lowered = [a.lower() for a in answers if a]
    for rule, question_pattern, answer_pattern in _COMPILED:
        if question_pattern.search(text) and (answer_pattern is None or any(answer_pattern.search(a) for a in lowered)):
            return rule.name
    return OTHER


class EmbeddingTypeClassifier:
    """Places ``other`` questions by sentence-embedding similarity to the types' descriptions."""

    def __init__(self, model: str | None = None, threshold: float = 0.35):
        from sentence_transformers import SentenceTransformer

        from .matching import bundled_minilm_path

        self.threshold = threshold
        self._model = SentenceTransformer(model or bundled_minilm_path(), device="cpu")
        unique = {rule.name: rule for rule in RULES}
        self._names = list(unique)
        self._types = self._model.encode([f"{r.name}: {r.description}" for r in unique.values()], normalize_embeddings=True)

    def classify_many(self, questions: Sequence[str]) -> list[str]:
        if not questions:
            return []
        vectors = self._model.encode(list(questions), normalize_embeddings=True)
        scores = vectors @ self._types.T
        return [self._names[row.argmax()] if row.max() >= self.threshold else OTHER for row in scores]


def classify_all(questions: Sequence[str], answers: Sequence[Sequence[str]], fallback: EmbeddingTypeClassifier | None = None) -> list[str]:
    types = [classify(q, a) for q, a in zip(questions, answers)]
    if fallback is not None:
        others = [i for i, t in enumerate(types) if t == OTHER]
        for i, t in zip(others, fallback.classify_many([questions[i] for i in others])):
            types[i] = t
    return types
