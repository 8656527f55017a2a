"""One view of an audited dataset, shared by every reader of it: the harness tasks, VLMEvalKit,
rectification, the report, the review page and the Hub card.

- A probe is *answerable* when the reference ensemble agreed on an answer: only those are scored,
  trained on, or counted in failure rates (the others have no trustworthy answer).
- A model's answer is *correct* when it matches the consensus the audit's way (VQA normalisation,
  then exact match).
- A row not (yet) given a failure type is labelled :data:`OTHER`, the type no rule claims. Where an
  annotator knows a probe's type (the world's ground truth: ``extra.truth.failure_type``), the
  record is written with it, and it wins over any classifier's guess.
- The *failure rate* of a model is the share of the audited target's discovered failures that the
  model fails too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .failure_types import OTHER
from .matching import ExactMatcher
from .records import known_failure_type  # noqa: F401 (part of the view)

ANSWERABLE_COLUMNS = ("ensemble_agrees", "consensus_answer")
_MATCHER = ExactMatcher()


def is_answerable(row: Mapping[str, Any]) -> bool:
    return bool(row["ensemble_agrees"]) and bool(row["consensus_answer"])


def answerable(dataset):
    """The answerable rows of a ``datasets.Dataset``."""
    return dataset.filter(lambda agrees, consensus: bool(agrees) and bool(consensus), input_columns=list(ANSWERABLE_COLUMNS))


def type_label(failure_type: str | None) -> str:
    return failure_type or OTHER


def is_correct(prediction: str | None, consensus: str | None) -> bool:
    return _MATCHER.same([(prediction or "", consensus or "")])[0]


def accuracy(correct: Sequence[bool]) -> float:
    return sum(map(bool, correct)) / len(correct) if len(correct) else math.nan


def failure_rate(correct: Sequence[bool], discovered: Sequence[bool]) -> float:
    """Of the probes that were discovered failures of the audited target, the share this model fails too."""
    on_failures = [bool(ok) for ok, found in zip(correct, discovered) if found]
    return 1.0 - sum(on_failures) / len(on_failures) if on_failures else math.nan
