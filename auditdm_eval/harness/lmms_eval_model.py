"""Every ``model_adapters`` model as an lmms-eval model: ``--model auditdm --model_args pretrained=<name|path|hub id>``.

Registered through the ``lmms_eval.models`` entry point (see :mod:`.lmms_eval_plugin`).
lmms-eval hands all requests of a task over in one call; the adapter batches them by
``batch_size``, grouped by generation settings.

Model arguments (``--model_args key=value,...``): see :data:`MODEL_ARGS`; any other key is an
error that names the closest known one. The batch size is ``batch_size`` in the model arguments,
else lmms-eval's ``--batch_size`` when given, else 8 (lmms-eval's own default of 1 would make the
adapter answer one request at a time). It is a number: ``auto`` is refused, not guessed.
"""

from __future__ import annotations

import difflib
from typing import Any

from lmms_eval.api.model import lmms
from lmms_eval.utils import simple_parse_args_string
from loguru import logger
from PIL import Image
from tqdm.auto import tqdm

from model_adapters import GenerationSettings, load_model

from .prompting import PROMPT_MODES, harness_request, truncate_at_stop

DEFAULT_BATCH_SIZE = 8
MODEL_ARGS = {
    "pretrained": "registered name, local path or Hub id (required)",
    "batch_size": f"requests per forward pass (default {DEFAULT_BATCH_SIZE})",
    "device": "auto, cpu, cuda, cuda:1, ... (default auto)",
    "dtype": "auto, float32, float16 or bfloat16 (default auto)",
    "max_new_tokens": "answer length when a task sets none (default 32)",
    "prompt_mode": f"{', '.join(PROMPT_MODES)} (default auto)",
    "trust_remote_code": "true to run a checkpoint's own code (default false)",
    "attn_implementation": "e.g. sdpa, eager, flash_attention_2 (default: the model's)",
    "revision": "Hub revision (default: main)",
}
# lmms-eval passes these from its own command line; they are not model arguments of ours
HARNESS_KEYS = {"batch_size", "max_batch_size", "device"}


class ModelArgumentError(ValueError):
    pass


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


def parse_batch_size(value: Any) -> int:
    text = str(value).strip()
    if text.lower().startswith("auto"):
        raise ModelArgumentError(
            f"batch_size={text}: the auditdm model does not search for a batch size; pass a number "
            f"(model_args batch_size=N or --batch_size N; default {DEFAULT_BATCH_SIZE})"
        )
    if not text.isdigit() or int(text) < 1:
        raise ModelArgumentError(f"batch_size={text}: pass a whole number >= 1")
    return int(text)


def check_model_args(given: dict[str, Any]) -> None:
    unknown = sorted(set(given) - set(MODEL_ARGS) - HARNESS_KEYS)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(MODEL_ARGS), n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    known = "; ".join(f"{key}: {text}" for key, text in MODEL_ARGS.items())
    raise ModelArgumentError(f"unknown auditdm model argument(s) {', '.join(hints)}. Known: {known}")


def resolve_batch_size(model_args: dict[str, Any], harness_value: Any) -> tuple[int, str]:
    """(batch size, where it came from): model_args' batch_size, else lmms-eval's --batch_size
    when it was given, else the default.

    lmms-eval passes its ``--batch_size`` as the string typed, and its default as the int 1."""
    from_args = model_args.get("batch_size")
    given = harness_value is not None and not (isinstance(harness_value, int) and harness_value == 1)
    if from_args is not None and given and str(from_args) != str(harness_value):
        raise ModelArgumentError(
            f"batch size given twice: model_args batch_size={from_args} and --batch_size {harness_value}; give one"
        )
    if from_args is not None:
        return parse_batch_size(from_args), "model_args"
    if given:
        return parse_batch_size(harness_value), "--batch_size"
    return DEFAULT_BATCH_SIZE, "default"


class AuditDMModel(lmms):
    """lmms-eval model over any adapter of ``model_adapters``."""

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> AuditDMModel:
        # lmms-eval calls cls(**model_args, **its_own_args): a key in both would be a TypeError
        model_args = simple_parse_args_string(arg_string) if isinstance(arg_string, str) else dict(arg_string or {})
        harness = {k: v for k, v in (additional_config or {}).items() if v is not None}
        check_model_args(model_args)
        options = dict(model_args)
        options["batch_size"], source = resolve_batch_size(model_args, harness.get("batch_size"))
        if "device" not in options and harness.get("device"):
            options["device"] = harness["device"]
        options.pop("max_batch_size", None)
        model = cls(**options)
        logger.info(f"auditdm: {model.adapter!r}, batch size {model.batch_size_per_gpu} (from {source})")
        return model

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None) -> AuditDMModel:
        return cls.create_from_arg_string(dict(arg_dict), additional_config)

    def __init__(
        self,
        pretrained: str | None = None,
        batch_size: int | str = DEFAULT_BATCH_SIZE,
        device: str | None = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 32,
        prompt_mode: str = "auto",
        trust_remote_code: bool | str = False,
        attn_implementation: str | None = None,
        revision: str | None = None,
    ) -> None:
        super().__init__()
        if not pretrained:
            raise ModelArgumentError("the auditdm model needs pretrained=<registered name | local path | Hub id>")
        if prompt_mode not in PROMPT_MODES:
            raise ModelArgumentError(f"prompt_mode={prompt_mode}: choose one of {', '.join(PROMPT_MODES)}")
        self.batch_size_per_gpu = parse_batch_size(batch_size)
        options: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
        if revision:
            options["revision"] = str(revision)
        self.adapter = load_model(
            str(pretrained),
            batch_size=self.batch_size_per_gpu,
            device=str(device or "auto"),
            dtype=str(dtype),
            trust_remote_code=str(trust_remote_code).lower() in {"1", "true", "yes"},
            **options,
        )
        self.max_new_tokens = int(max_new_tokens)
        self.prompt_mode = prompt_mode

    @property
    def device(self) -> str:
        return getattr(self.adapter, "device", "cpu")

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def generate_until(self, requests) -> list[str]:
        prepared = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            images = _as_images(doc_to_visual(self.task_dict[task][split][doc_id]))
            settings = generation_settings(dict(gen_kwargs), self.max_new_tokens)
            prepared.append((harness_request(context, images, self.prompt_mode, settings), gen_kwargs.get("until")))
        outputs: list[str] = []
        progress = tqdm(total=len(requests), desc="auditdm responding", disable=self.rank != 0)
        # the adapter batches by batch_size and honours each request's settings; hand it a few
        # batches at a time so the progress bar moves and memory stays bounded
        step = self.batch_size_per_gpu * 4
        for start in range(0, len(prepared), step):
            chunk = prepared[start : start + step]
            for offset, ((_, until), text) in enumerate(zip(chunk, self.adapter.generate([request for request, _ in chunk]))):
                answer = truncate_at_stop(text, [until] if isinstance(until, str) else until)
                outputs.append(answer)
                args = requests[start + offset].args
                self.cache_hook.add_partial("generate_until", (args[0], args[1]), answer)
            progress.update(len(chunk))
        progress.close()
        return outputs

    def loglikelihood(self, requests):
        raise NotImplementedError("auditdm models generate text; loglikelihood tasks are not supported")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("auditdm models answer single-round requests")
