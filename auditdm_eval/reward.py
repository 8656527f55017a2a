"""The auditor's RL reward, with the signature of a trl ``GRPOTrainer`` reward function.

Each completion is the auditor policy's output for its row's image: a question (mode
``question``), a regeneration caption (``regenerate``) or an edit command (``edit``). The reward
puts it into a work item and runs the audit plan's very stages (render -> question -> answer ->
judge): the stage that would have asked the auditor for that text finds it written and passes the
item on. Training therefore maximises exactly the disagreement an audit measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from .modes import MODES
from .plan import AuditPlan
from .records import SourceImage, WorkItem
from .resources import Resources
from .stages import run_chain
from .stages.auditor import clean_auditor_text

TEXT_FIELDS = {None: "question", "caption": "caption", "edit": "edit_command"}


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
    """``reward(prompts, completions, image=..., [mode=..., question=..., source_id=...])`` -> one reward per completion.

    A ``mode`` column says what each completion is (question, caption or edit command); without it
    every completion is of ``mode``. ``last`` keeps the finished work items of the latest call, so
    other reward terms and logs read the verdicts (and failures) without running the stages again.
    """

    def __init__(self, plan: AuditPlan, mode: str = "question", resources: Resources | None = None, image_column: str = "image"):
        if mode not in plan.modes:
            raise ValueError(f"the plan audits modes {plan.modes}; it has no stages for {mode!r}")
        self.plan = plan
        self.mode = mode
        self.image_column = image_column
        self.stages = [spec.build(resources or Resources()) for spec in plan.stages]
        self.last: list[WorkItem] = []
        self.__name__ = f"auditdm_{mode}_disagreement"  # trl logs rewards under the function's name

    def items(self, completions: Sequence[Any], columns: dict[str, Any]) -> list[WorkItem]:
        count = len(completions)
        images = self._images(columns, count)
        questions = columns.get("question") or [None] * count
        ids = columns.get("source_id") or [f"row{i}" for i in range(count)]
        modes = columns.get("mode") or [self.mode] * count
        unknown = sorted(set(modes) - set(self.plan.modes))
        if unknown:
            raise ValueError(f"rows of mode(s) {unknown}, but the plan audits {self.plan.modes}: add them to the audit's modes")
        items = []
        for i, completion in enumerate(completions):
            source = SourceImage(str(ids[i]), images[i].convert("RGB"), question=questions[i])
            item = self.plan.work_item(source, modes[i], sample=i)
            text = clean_auditor_text(completion_text(completion))
            field = TEXT_FIELDS[MODES[modes[i]].auditor_writes]
            items.append(item.but(**{field: text}) if text else item.fail("policy", "empty completion", "the policy wrote nothing parseable"))
        return items

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        self.last = run_chain(self.stages, self.items(completions, columns))
        return [item.verdict.reward if item.alive and item.verdict is not None else 0.0 for item in self.last]

    def _images(self, columns: dict[str, Any], count: int) -> list[Image.Image]:
        value = columns.get(self.image_column) or columns.get("images")
        if value is None:
            raise KeyError(f"the reward needs the row's image: add an {self.image_column!r} column to the dataset")
        return [row[0] if isinstance(row, list) else row for row in value][:count]
