"""Any ``model_adapters`` model as a VLMEvalKit model (``vlmeval.vlm.base.BaseModel``)."""

from __future__ import annotations

from typing import Any

from PIL import Image
from vlmeval.vlm.base import BaseModel

from model_adapters import GenerationSettings, load_model

from .prompting import harness_request
from .vlmeval_dataset import AuditDMDataset


class AuditDMVLM(BaseModel):
    INTERLEAVE = False
    allowed_types = ["text", "image"]

    def __init__(self, model: str, batch_size: int = 8, device: str = "auto", dtype: str = "auto", max_new_tokens: int = 32, prompt_mode: str = "auto", **kwargs: Any):
        super().__init__()
        self.adapter = load_model(model, batch_size=batch_size, device=device, dtype=dtype)
        self.max_new_tokens = max_new_tokens
        self.prompt_mode = prompt_mode

    def generate_inner(self, message: list[dict[str, str]], dataset: str | None = None) -> str:
        images = [Image.open(item["value"]).convert("RGB") for item in message if item["type"] == "image"]
        text = "\n".join(item["value"] for item in message if item["type"] == "text")
        settings = GenerationSettings(max_new_tokens=AuditDMDataset.answer_length(dataset) or self.max_new_tokens)
        return self.adapter.generate([harness_request(text, images, self.prompt_mode, settings)])[0]
