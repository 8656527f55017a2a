"""The auditor stages: the auditor VLM writes the alteration (caption or edit command) of each
image-changing probe, and the question of every probe that has none yet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from model_adapters import GREEDY, GenerationRequest, GenerationSettings

from ..answering import ModelStage
from ..modes import MODES, alters_image
from ..prompts import PROMPT_VARIANTS
from ..records import WorkItem
from ..registry import part
from ..resources import ModelRef, Resources

WRITES = ("alteration", "question")
_LABEL = re.compile(r"^\s*(question|caption|command|edit(ing)? command|answer)\s*[:\-]\s*", re.IGNORECASE)
REASONING_START, REASONING_END = "<think>", "</think>"
EMPTY_FIX = "raise --auditor-max-new-tokens, try --prompt-variant baseline, or check the auditor model"


def strip_reasoning(text: str) -> str:
    """What follows a reasoning block ("<think> ... </think>", as Qwen3 and DeepSeek-R1 write it); a block
    left open (the auditor ran out of tokens while thinking) leaves nothing."""
    if REASONING_END in text:
        return text.rsplit(REASONING_END, 1)[1]
    return "" if REASONING_START in text else text


def clean_auditor_text(text: str) -> str:
    """First non-empty line after any reasoning block, without a leading label ("Question:") or surrounding quotes."""
    line = next((line.strip() for line in strip_reasoning(text).splitlines() if line.strip()), "")
    line = _LABEL.sub("", line).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line


@dataclass(frozen=True)
class AuditorSpec:
    model: ModelRef
    writes: str  # alteration | question
    prompt_variant: str = "auditdm"
    settings: GenerationSettings = GREEDY
    cache: str | None = None  # answer cache path; None keeps outputs in memory
    source_questions: bool = True  # ask a pool's own question on its altered image: (Q, I*)

    def __post_init__(self) -> None:
        if self.writes not in WRITES:
            raise ValueError(f"an auditor stage writes one of {WRITES}, not {self.writes!r}")
        PROMPT_VARIANTS.get(self.prompt_variant)

    @property
    def name(self) -> str:
        return f"auditor:{self.writes}"

    def build(self, resources: Resources) -> AuditorStage:
        return AuditorStage(self, resources)

    def part(self) -> dict[str, Any]:
        return part(self.model.name, prompt_variant=self.prompt_variant, **self.settings.key())


class AuditorStage(ModelStage):
    spec: AuditorSpec

    def __init__(self, spec: AuditorSpec, resources: Resources):
        super().__init__(spec, resources)
        self.prompts = PROMPT_VARIANTS.build(spec.prompt_variant)

    def __call__(self, batch: list[WorkItem]) -> list[WorkItem]:
        batch = list(batch)
        if self.spec.writes == "alteration":
            todo = [i for i, item in enumerate(batch) if item.alive and alters_image(item.mode) and not _alteration(item)]
            kinds = [MODES[batch[i].mode].auditor_writes for i in todo]
            self._write(batch, todo, kinds, on_source=True)
            return batch
        todo = []
        for i, item in enumerate(batch):
            if not item.alive or item.question or item.image is None:
                continue
            if alters_image(item.mode) and self.spec.source_questions and item.source.question:
                batch[i] = item.but(question=item.source.question, question_origin="dataset")  # (Q, I*)
            else:
                todo.append(i)
        self._write(batch, todo, ["question"] * len(todo), on_source=False)
        return batch

    def _write(self, batch: list[WorkItem], todo: list[int], kinds: list[str], on_source: bool) -> None:
        if not todo:
            return
        requests = []
        for i, kind in zip(todo, kinds):
            item = batch[i]
            image, sha = (item.source.image, item.source.image_sha) if on_source else (item.image, item.image_sha)
            requests.append(
                GenerationRequest(
                    images=(image,), prompt=getattr(self.prompts, kind), task="instruct", settings=self.spec.settings,
                    seed=item.seed, metadata={"image_shas": [sha]},
                )
            )
        for i, kind, output in zip(todo, kinds, self.generator(requests)):
            item = batch[i]
            stage = f"auditor:{kind}"
            if output.error is not None:
                batch[i] = item.fail(stage, output.error, "check the auditor model")
                continue
            text = clean_auditor_text(output.text)
            if not text:
                message = f"the auditor {self.generator.model_id!r} returned an empty {kind} (raw output {output.text!r})"
                batch[i] = item.fail(stage, message, EMPTY_FIX)
            elif kind == "question":
                batch[i] = item.but(question=text, question_origin="auditor")
            else:
                batch[i] = item.but(**{_TEXT_FIELD[kind]: text})


_TEXT_FIELD = {"caption": "caption", "edit": "edit_command"}


def _alteration(item: WorkItem) -> str | None:
    return item.caption if MODES[item.mode].auditor_writes == "caption" else item.edit_command
