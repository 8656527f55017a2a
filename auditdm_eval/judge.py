"""Consensus of the reference models, the failure decision and the disagreement reward.

A probe is a discovered failure when the reference ensemble agrees (it is then taken to be
answerable) and the target disagrees with the ensemble's answer. With one reference model
(the paper's "model comparison" mode) the reference's answer is the consensus. The reward
the auditor's RL training maximises is computed from the same verdict, so the GRPO reward
function and the offline audit can never drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from .matching import AnswerMatcher
from .records import Answer, Verdict
from .registry import Registry


@dataclass(frozen=True)
class Consensus:
    answer: str | None  # a representative raw answer of the largest agreeing group
    normalized: str | None
    agreement: float  # size of the largest agreeing group / number of references
    size: int


AGREEMENT_RULES: Registry[bool] = Registry("agreement rule", "auditdm.agreement_rules")
"""Does the ensemble agree? A rule takes (size of the largest agreeing group, number of references)."""
AGREEMENT_RULES.register("unanimous", lambda size, total: total > 0 and size == total)
AGREEMENT_RULES.register("majority", lambda size, total: total > 0 and size * 2 > total)

REWARDS: Registry[float] = Registry("reward kind", "auditdm.rewards")
"""The auditor's reward from one verdict: a function of (judged, target_matches, agreement), where
``judged`` says the ensemble agreed and the target answered."""


@REWARDS.register("binary")
def binary_reward(*, judged: bool, target_matches: bool, agreement: float) -> float:
    """The paper's: 1 for a discovered failure, else 0."""
    return 1.0 if judged and not target_matches else 0.0


@REWARDS.register("graded")
def graded_reward(*, judged: bool, target_matches: bool, agreement: float) -> float:
    """The agreement share when the target disagrees (probes more of the ensemble agrees on earn more)."""
    return 0.0 if target_matches else float(agreement)


def group_answers(
    answers: Sequence[Answer], matcher: AnswerMatcher, question: str, image: Image.Image | None
) -> list[list[Answer]]:
    """Group usable answers into classes of equivalent meaning (greedy, against each class's first)."""
    groups: list[list[Answer]] = []
    for answer in answers:
        if not answer.usable:
            continue
        if groups:
            matches = matcher.same(
                [(answer.raw, group[0].raw) for group in groups],
                questions=[question] * len(groups),
                images=[image] * len(groups) if image is not None else None,
            )
            hit = next((i for i, ok in enumerate(matches) if ok), None)
            if hit is not None:
                groups[hit].append(answer)
                continue
        groups.append([answer])
    return groups


def consensus_of(
    answers: Sequence[Answer], matcher: AnswerMatcher, question: str, image: Image.Image | None = None
) -> Consensus:
    groups = group_answers(answers, matcher, question, image)
    if not groups:
        return Consensus(None, None, 0.0, 0)
    largest = max(groups, key=len)  # ties go to the group seen first (reference order)
    return Consensus(largest[0].raw, largest[0].normalized, len(largest) / len(answers), len(largest))


@dataclass
class Judge:
    """Turns the target's and the references' answers to one probe into a :class:`Verdict`."""

    matcher: AnswerMatcher
    agreement_rule: str = "unanimous"
    reward: str = "binary"

    def __post_init__(self) -> None:
        self._agrees = AGREEMENT_RULES.get(self.agreement_rule)
        self._reward = REWARDS.get(self.reward)

    def judge_batch(
        self,
        targets: Sequence[Answer],
        references: Sequence[Sequence[Answer]],
        questions: Sequence[str],
        images: Sequence[Image.Image] | None = None,
    ) -> list[Verdict]:
        verdicts = []
        for i, (target, refs) in enumerate(zip(targets, references)):
            image = images[i] if images is not None else None
            verdicts.append(self.judge(target, refs, questions[i], image))
        return verdicts

    def judge(
        self, target: Answer, references: Sequence[Answer], question: str, image: Image.Image | None = None
    ) -> Verdict:
        consensus = consensus_of(references, self.matcher, question, image)
        # errored or empty references count in the denominator: they never make an ensemble agree
        agrees = self._agrees(consensus.size, len(references))
        target_usable = target.usable
        if consensus.answer is not None and target_usable:
            matches = self.matcher.same([(target.raw, consensus.answer)], [question], [image] if image else None)[0]
        else:
            matches = False
        judged = agrees and target_usable
        return Verdict(
            target_answer=target.raw,
            reference_answers=[a.raw for a in references],
            consensus_answer=consensus.answer,
            agreement=consensus.agreement,
            ensemble_agrees=agrees,
            target_matches_consensus=matches,
            is_failure=judged and not matches,
            reward=self._reward(
                judged=judged, target_matches=matches, agreement=consensus.agreement if target_usable else 0.0
            ),
        )
