"""The auditor: a VLM that looks at an image and writes a question, a caption or an edit command."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from model_adapters import GREEDY, GenerationRequest, GenerationSettings

from .answering import CachedGenerator, Output
from .prompts import AuditorPrompts

WRITING_KINDS = ("question", "caption", "edit")
_LABEL = re.compile(r"^\s*(question|caption|command|edit(ing)? command|answer)\s*[:\-]\s*", re.IGNORECASE)


def clean_auditor_text(text: str) -> str:
    """First non-empty line, without a leading label ("Question:") or surrounding quotes."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = _LABEL.sub("", line).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line


@dataclass
class Auditor:
    generator: CachedGenerator
    prompts: AuditorPrompts
    variant: str
    settings: GenerationSettings = GREEDY

    @property
    def auditor_id(self) -> str:
        return self.generator.model_id

    def write(self, kind: str, images: Sequence[Image.Image], image_shas: Sequence[str], seeds: Sequence[int]) -> list[Output]:
        """One text of ``kind`` per image. Empty texts come back as errors that name the fix."""
        if kind not in WRITING_KINDS:
            raise ValueError(f"unknown auditor output {kind!r}; choose one of: {', '.join(WRITING_KINDS)}")
        instruction = getattr(self.prompts, kind)
        requests = [
            GenerationRequest(
                images=(image,), prompt=instruction, task="instruct", settings=self.settings, seed=seed,
                metadata={"image_shas": [sha]},
            )
            for image, sha, seed in zip(images, image_shas, seeds)
        ]
        outputs = []
        for output in self.generator(requests):
            if output.error is not None:
                outputs.append(output)
                continue
            text = clean_auditor_text(output.text)
            if not text:
                outputs.append(
                    Output(
                        "",
                        f"the auditor {self.auditor_id!r} returned an empty {kind} (raw output {output.text!r}); "
                        "raise --auditor-max-new-tokens, try --prompt-variant baseline, or check the auditor model",
                    )
                )
            else:
                outputs.append(Output(text))
        return outputs
