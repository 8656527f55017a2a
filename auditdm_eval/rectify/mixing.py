"""Training pairs from an audit and from the target's original data, and how they are mixed.

Supplement A.3: the auditor makes one new pair per original example, and the generated pairs are
mixed with the original training set. A.4 / Table 2: images without original questions get
questions from the untuned base model (the "same images" control): :func:`pairs_from_audit`
with ``selection="answerable"`` on an audit run whose auditor is the base model.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import Image

from ..audited import is_answerable
from ..matching import normalize_answer
from ..records import image_sha256

SELECTIONS = ("failures", "answerable")


@dataclass
class TrainPair:
    image: Image.Image
    question: str
    answer: str
    origin: str  # "auditdm" | "original"
    source_id: str  # the original example (image) the pair belongs to

    def key(self) -> tuple[str, str]:
        return image_sha256(self.image), normalize_answer(self.question)


def pairs_from_audit(dataset: Iterable[dict], selection: str = "failures") -> list[TrainPair]:
    """Audited probes as training pairs, answered with the consensus.

    ``failures``: the discovered target failures (the rectification data); ``answerable``: every
    probe the references agreed on (the "same images" control and other ablations).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose one of: {', '.join(SELECTIONS)}")
    pairs = []
    for row in dataset:
        if not is_answerable(row):
            continue
        if selection == "failures" and not row["is_failure"]:
            continue
        pairs.append(TrainPair(row["image"], row["question"], row["consensus_answer"], "auditdm", row["source_id"]))
    return pairs


def pairs_from_original(
    dataset: Iterable[dict], image_column: str, question_column: str, answer_column: str,
    id_column: str | None = None, split: str = "train",
) -> list[TrainPair]:
    """Original examples; their ids match the ids an audit of the same dataset gives its sources."""
    pairs = []
    for index, row in enumerate(dataset):
        answer = row[answer_column]
        if isinstance(answer, list):  # VQA-style answer lists: the first is the canonical one
            answer = answer[0] if answer else ""
        source_id = str(row[id_column]) if id_column else f"{split}:{index}"
        pairs.append(TrainPair(row[image_column], str(row[question_column]), str(answer), "original", source_id))
    return pairs


def deduplicate(pairs: Sequence[TrainPair]) -> list[TrainPair]:
    """Drop repeated (image, normalised question) pairs, keeping the first; originals come first."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for pair in sorted(pairs, key=lambda p: p.origin != "original"):
        key = pair.key()
        if key not in seen:
            seen.add(key)
            kept.append(pair)
    return kept


def mix(
    original: Sequence[TrainPair],
    generated: Sequence[TrainPair],
    generated_per_original: int | None = 1,
    generated_ratio: float | None = None,
    seed: int = 0,
) -> list[TrainPair]:
    """Original pairs plus generated ones, de-duplicated and shuffled.

    ``generated_per_original`` keeps at most that many generated pairs per original example
    (matched by ``source_id``; the paper uses 1); ``generated_ratio`` then caps the generated pairs
    at that multiple of the original count. With no original data every generated pair is kept.
    """
    rng = random.Random(seed)
    generated = deduplicate(list(generated))
    if original and generated_per_original is not None:
        per_source: dict[str, list[TrainPair]] = {}
        for pair in generated:
            per_source.setdefault(pair.source_id, []).append(pair)
        originals = {pair.source_id for pair in original}
        generated = [
            pair for source, group in per_source.items()
            for pair in rng.sample(group, min(generated_per_original, len(group)))
            if source in originals
        ]
    if original and generated_ratio is not None:
        limit = int(round(generated_ratio * len(original)))
        generated = rng.sample(generated, min(limit, len(generated)))
    mixed = deduplicate(list(original) + list(generated))
    rng.shuffle(mixed)
    return mixed
