"""Scoring of the auditdm_* lmms-eval tasks. It needs lmms-eval alone (no auditdm_eval import):
`auditdm write-tasks` copies this file, as it is, into every task folder as ``utils.py``.

Each task ``auditdm.<audit>.<failure type>`` holds the probes of one failure type on which the
audit's reference ensemble agreed; the answer to match is the ensemble's consensus.

- ``accuracy``: the model's answer equals the consensus after lmms-eval's VQA answer
  normalisation (``EvalAIAnswerProcessor``), by lmms-eval's exact match.
- ``failure_rate``: of the probes that were discovered failures of the audited target, the share
  this model fails too (NaN when the task holds none).

The group ``auditdm_<audit>`` runs every per-type task once and reports the whole audit: accuracy
averaged over its tasks weighted by their sizes, failure rate weighted by their numbers of
discovered failures (so both equal the numbers over all the audit's probes).
"""

from __future__ import annotations

import math

from lmms_eval.api.metrics import exact_match_hf_evaluate
from lmms_eval.tasks._task_utils.vqa_eval_metric import EvalAIAnswerProcessor

_normalise = EvalAIAnswerProcessor()


def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question'].strip()}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc):
    return doc["consensus_answer"]


def is_correct(prediction, answer):
    """lmms-eval's VQA normalisation, then exact match; an empty answer matches nothing."""
    prediction, answer = _normalise(prediction or ""), _normalise(answer or "")
    return bool(answer) and exact_match_hf_evaluate(predictions=[prediction], references=[answer])["exact_match"] == 1.0


def process_results(doc, results):
    correct = float(is_correct(results[0] if results else "", doc["consensus_answer"]))
    return {"accuracy": correct, "failure_rate": {"discovered": bool(doc["is_failure"]), "failed": 1.0 - correct}}


class Rate(float):
    """A rate that remembers how many probes it is over: lmms-eval hands a group's aggregation
    only its tasks' values and sizes, and a failure rate is over the discovered failures."""

    def __new__(cls, value, over=None):
        rate = super().__new__(cls, value)
        rate.over = over
        return rate


def failure_rate(items):
    on_failures = [item["failed"] for item in items if item["discovered"]]
    return Rate(sum(on_failures) / len(on_failures) if on_failures else math.nan, len(on_failures))


def group_failure_rate(rates, sizes, weight_by_size=True):
    """The failure rate over all the group's discovered failures (its tasks' rates weighted by
    how many discovered failures each holds)."""
    counts = [getattr(rate, "over", None) for rate in rates]
    if None in counts:  # values that lost their counts: weight by task size, skipping empty rates
        counts = [0 if math.isnan(rate) else (size if weight_by_size else 1) for rate, size in zip(rates, sizes)]
    total = sum(counts)
    if not total:
        return Rate(math.nan, 0)
    return Rate(sum(float(rate) * count for rate, count in zip(rates, counts) if count) / total, total)
