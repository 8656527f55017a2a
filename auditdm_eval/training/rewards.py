"""The auditor's reward terms, each a trl reward function logged under its own name.

All terms read one run of the audit's own stages per batch (:class:`~auditdm_eval.reward.AuditReward`),
so the stages run once however many terms there are:

- ``disagreement``: the audit's verdict reward (binary: a discovered failure earns 1);
- ``answerability``: the reference ensemble agreed on an answer (the probe is answerable);
- ``format``: the probe (the completion after any reasoning block) is one non-empty line with no word
  repeated back to back (a question is a single question, ending with its only "?");
- ``novelty``: 1 / the number of different images in the batch the same text was written for, so that
  a probe written for one image earns more than one written for every image (a blind auditor's
  question): the auditor is paid for looking, and for finding failures in many ways rather than one.
  Repeating a text within one image's group of samples costs nothing. Texts are compared by their set
  of words, so reordering a probe does not make it a new one, and an ill-formed probe (see ``format``)
  earns none, so words tacked on after a question do not either. With ``novelty_window`` N, the count
  also takes in the last N probes of earlier batches: a batch shows only a few images, so an auditor
  that spreads a dozen texts over every scene collides with itself in a batch rarely, and only a longer
  memory pays it for writing a probe no other scene got. The window is kept in memory: a resumed run
  starts it empty.

A completion whose probe could not be made (the renderer could not draw the caption, a model
raised) earns 0 on every term, and is counted by stage in :attr:`RewardTerms.failures`, which
:class:`FailureLogger` adds to the trainer's logs: never a silent zero.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from ..matching import normalize_answer
from ..records import WorkItem
from ..reward import AuditReward, completion_text
from ..stages.auditor import clean_auditor_text, strip_reasoning

TERMS = ("disagreement", "answerability", "format", "novelty")


class RewardTerms:
    def __init__(self, audit: AuditReward, novelty_window: int = 0):
        self.audit = audit
        self._batch: tuple[int, tuple[str, ...]] | None = None
        # (text, image) of the latest well-formed probes of earlier batches; and of those before the current one
        self.recent: deque[tuple[str, str]] = deque(maxlen=novelty_window)
        self._before_batch: list[tuple[str, str]] = []
        self.failures: Counter[str] = Counter()  # failed probes by stage, since the last log
        self.seen = 0  # completions scored since the last log
        self.answerable = 0

    def finished(self, prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any]) -> list[WorkItem]:
        """The finished work items of this batch: the stages run on the first term's call only."""
        texts = tuple(completion_text(c) for c in completions)
        key = (id(completions), texts)
        if key != self._batch:
            self.audit(prompts, completions, **columns)
            self._batch = key
            items = self.audit.last
            self.seen += len(items)
            self.answerable += sum(_answerable(item) for item in items)
            self.failures.update(item.failure.stage for item in items if item.failure is not None)
            self._before_batch = list(self.recent)
            self.recent.extend(
                (text, item.source.image_sha) for item, text, completion in zip(items, novelty_texts(completions), completions)
                if text and well_formed(item, completion)
            )
        return self.audit.last

    def term(self, name: str) -> Callable[..., list[float]]:
        if name not in TERMS:
            raise ValueError(f"unknown reward term {name!r}; choose from: {', '.join(TERMS)}")
        score = getattr(self, f"_{name}")

        def reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
            items = self.finished(prompts, completions, columns)
            return score(items, completions)

        reward.__name__ = name  # trl logs each reward function under its __name__
        return reward

    def terms(self, names: Sequence[str]) -> list[Callable[..., list[float]]]:
        return [self.term(name) for name in names]

    def take_counts(self) -> dict[str, float]:
        """Failures by stage and the answerable share since the last call, for the logs."""
        logs = {f"audit/failed/{stage}": float(count) for stage, count in sorted(self.failures.items())}
        logs["audit/failed/total"] = float(sum(self.failures.values()))
        if self.seen:
            logs["audit/answerable_share"] = self.answerable / self.seen
        self.failures.clear()
        self.seen = self.answerable = 0
        return logs

    # -- the terms ------------------------------------------------------------------------------
    @staticmethod
    def _disagreement(items: list[WorkItem], completions: Sequence[Any]) -> list[float]:
        return [item.verdict.reward if item.alive and item.verdict is not None else 0.0 for item in items]

    @staticmethod
    def _answerability(items: list[WorkItem], completions: Sequence[Any]) -> list[float]:
        return [1.0 if _answerable(item) else 0.0 for item in items]

    @staticmethod
    def _format(items: list[WorkItem], completions: Sequence[Any]) -> list[float]:
        return [1.0 if well_formed(item, completion) else 0.0 for item, completion in zip(items, completions)]

    def _novelty(self, items: list[WorkItem], completions: Sequence[Any]) -> list[float]:
        texts = novelty_texts(completions)
        images: dict[str, set[str]] = {}
        for text, image in self._before_batch:
            images.setdefault(text, set()).add(image)
        for item, text in zip(items, texts):
            images.setdefault(text, set()).add(item.source.image_sha)
        # an ill-formed probe earns no novelty: otherwise words tacked on after the question buy it
        return [
            1.0 / len(images[text]) if text and well_formed(item, completion) else 0.0
            for item, completion, text in zip(items, completions, texts)
        ]


def novelty_texts(completions: Sequence[Any]) -> list[str]:
    """Each probe as novelty compares it: its set of words."""
    return [" ".join(sorted(set(normalize_answer(probe_text(c)).split()))) for c in completions]


def well_formed(item: WorkItem, completion: Any) -> bool:
    """One non-empty line, no word repeated back to back; a question is one question, ending with "?"."""
    raw = probe_text(completion)
    words = normalize_answer(raw).split()
    fluent = all(a != b for a, b in zip(words, words[1:]))
    one_line = bool(raw) and "\n" not in raw and clean_auditor_text(raw) == raw
    one_question = item.mode != "question" or (raw.endswith("?") and raw.count("?") == 1)
    return one_line and fluent and one_question


def probe_text(completion: Any) -> str:
    """The completion without its reasoning block, if it has one: the probe the audit runs."""
    return strip_reasoning(completion_text(completion)).strip()


def _answerable(item: WorkItem) -> bool:
    return item.alive and item.verdict is not None and item.verdict.ensemble_agrees


def failure_logger(terms: RewardTerms):
    """A ``transformers`` callback that adds the audit's failure counts to every log line."""
    from transformers import TrainerCallback

    class FailureLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None and ("loss" in logs or any(key.startswith("rewards/") for key in logs)):
                counts = terms.take_counts()
                logs.update(counts)  # what the console and report_to integrations show
                if state.log_history:  # the Trainer recorded a copy of logs before calling us
                    state.log_history[-1].update(counts)

    return FailureLogger()
