"""The auditor's RL reward, with the signature of a trl ``GRPOTrainer`` reward function.

Each completion is the auditor policy's output for its row's image: a question (mode
``question``), a regeneration caption (``regenerate``) or an edit command (``edit``). The reward
runs the very stages an audit runs (render -> answer -> judge) and returns each verdict's reward,
so training maximises exactly the disagreement the audit measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from .answering import Output
from .auditor import clean_auditor_text
from .pipeline import AuditPipeline
from .records import SourceImage


def completion_text(completion: Any) -> str:
    """trl passes plain strings, or for conversational data a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return " ".join(part.get("text", "") for part in content if part.get("type") == "text")
        return str(content)
    return ""


class AuditReward:
    def __init__(self, pipeline: AuditPipeline, mode: str = "question", image_column: str = "image"):
        self.pipeline = pipeline
        self.mode = mode
        self.image_column = image_column
        self.__name__ = f"auditdm_{mode}_disagreement"  # trl logs rewards under the function's name

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        images = self._images(columns, len(completions))
        questions = columns.get("question") or [None] * len(completions)
        ids = columns.get("source_id") or [f"row{i}" for i in range(len(completions))]
        pending, texts = [], []
        for i, completion in enumerate(completions):
            source = SourceImage(str(ids[i]), images[i].convert("RGB"), question=questions[i])
            pending.append(self.pipeline.pending_for(source, self.mode, sample=i))
            text = clean_auditor_text(completion_text(completion))
            texts.append(Output(text) if text else Output("", "empty completion"))
        probes, _ = self.pipeline.make_probes(self.mode, pending, texts)
        records, _ = self.pipeline.answer_and_judge(probes)
        reward_by_probe = {record.probe.probe_id: record.verdict.reward for record in records}
        return [float(reward_by_probe.get(item.probe_id, 0.0)) for item in pending]

    def _images(self, columns: dict[str, Any], count: int) -> list[Image.Image]:
        value = columns.get(self.image_column) or columns.get("images")
        if value is None:
            raise KeyError(f"the reward needs the row's image: add an {self.image_column!r} column to the dataset")
        return [row[0] if isinstance(row, list) else row for row in value][:count]
