"""Every ``model_adapters`` model as an lmms-eval model: ``--model auditdm --model_args pretrained=<name|path|hub id>``.

Registered through the ``lmms_eval.models`` entry point (see :mod:`.lmms_eval_plugin`).
lmms-eval hands all requests of a task over in one call; they are batched here, grouped by
generation settings.
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.model import lmms
from PIL import Image
from tqdm.auto import tqdm

from model_adapters import GenerationSettings, load_model

from .prompting import harness_request, truncate_at_stop



def _as_images(visuals: Any) -> list[Image.Image]:
    if visuals is None:
        return []
    visuals = visuals if isinstance(visuals, list) else [visuals]
    images = []
    for visual in visuals:
        if isinstance(visual, Image.Image):
            images.append(visual)
        elif isinstance(visual, str):
            images.append(Image.open(visual))
        else:
            raise TypeError(f"auditdm models take images; got {type(visual).__name__} (video and audio are not supported)")
    return images


def generation_settings(gen_kwargs: dict[str, Any], default_max_new_tokens: int) -> GenerationSettings:
    """A task's ``generation_kwargs`` as our settings: greedy unless it samples with a temperature."""
    sampling = bool(gen_kwargs.get("do_sample", False)) and float(gen_kwargs.get("temperature") or 0) > 0
    return GenerationSettings(
        max_new_tokens=int(gen_kwargs.get("max_new_tokens") or default_max_new_tokens),
        temperature=float(gen_kwargs["temperature"]) if sampling else 0.0,
        top_p=float(gen_kwargs.get("top_p") or 1.0) if sampling else 1.0,
    )


class AuditDMModel(lmms):
    """lmms-eval model over any adapter of ``model_adapters``."""

    def __init__(
        self,
        pretrained: str,
        batch_size: int | str = 8,
        device: str | None = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 32,
        prompt_mode: str = "auto",
        trust_remote_code: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.batch_size_per_gpu = int(batch_size) if str(batch_size).isdigit() else 8
        self.adapter = load_model(
            pretrained,
            batch_size=self.batch_size_per_gpu,
            device=device or "auto",
            dtype=dtype,
            trust_remote_code=str(trust_remote_code).lower() in {"1", "true", "yes"},
        )
        self.max_new_tokens = int(max_new_tokens)
        self.prompt_mode = prompt_mode

    @property
    def device(self) -> str:
        return getattr(self.adapter, "device", "cpu")

    def generate_until(self, requests) -> list[str]:
        outputs: list[str] = []
        prepared = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            images = _as_images(doc_to_visual(self.task_dict[task][split][doc_id]))
            settings = generation_settings(dict(gen_kwargs), self.max_new_tokens)
            prepared.append((harness_request(context, images, self.prompt_mode, settings), gen_kwargs.get("until")))
        progress = tqdm(total=len(requests), desc="auditdm responding", disable=self.rank != 0)
        # the adapter groups by answer length and honours each request's settings
        for start in range(0, len(prepared), self.batch_size_per_gpu):
            chunk = prepared[start : start + self.batch_size_per_gpu]
            for (_, until), text in zip(chunk, self.adapter.generate([request for request, _ in chunk])):
                outputs.append(truncate_at_stop(text, [until] if isinstance(until, str) else until))
                index = len(outputs) - 1
                self.cache_hook.add_partial("generate_until", (requests[index].args[0], requests[index].args[1]), outputs[index])
            progress.update(len(chunk))
        progress.close()
        return outputs

    def loglikelihood(self, requests):
        raise NotImplementedError("auditdm models generate text; loglikelihood tasks are not supported")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("auditdm models answer single-round requests")
