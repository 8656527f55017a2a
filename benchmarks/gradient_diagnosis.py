"""Where a GRPO step's non-finite gradient comes from: the step's own loss, recomputed under variants.

The Trainer clips the gradient before any callback sees it, and clipping by a NaN norm turns every
gradient into NaN, so the gradient a step leaves behind says nothing about where the NaN began. This
callback keeps the inputs of the step's first ``compute_loss`` call (generation and reward already
done) and, before the optimizer runs, recomputes that loss and its gradient under each variant:

- ``as_trained``: nothing changed; which parameters' gradients are not finite, grouped by module
  (layer numbers folded), and the loss;
- ``torch_log_probs``: trl's log-probability head folds its tiles with torch ops instead of its
  Triton kernels (the CPU path);
- ``sdpa_math``: scaled-dot-product attention on torch's math kernel instead of the fused (flash,
  memory-efficient) ones, whose backward can turn a fully masked row into NaN;
- ``anomaly``: ``torch.autograd.detect_anomaly(check_nan=True)``, which names the backward function
  that first returned NaN and the forward line that made it;
- ``no_gradient_checkpointing``: activations kept instead of recomputed in the backward;
- ``traced``: nothing changed, and per language-model layer, attention and MLP the forward output's
  size and its smallest row (and where), the largest gradient reaching it (and where), and the
  attention mask's fully blocked rows (``layers``).

Then it drops every gradient (the optimizer applies nothing) and stops the run.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

LAYER_NUMBER = re.compile(r"\.\d+(?=\.)")


def module_group(parameter_name: str) -> str:
    """``...layers.12.self_attn.q_proj.lora_A.default.weight`` -> ``...layers.N.self_attn.q_proj.lora_A.default.weight``."""
    return LAYER_NUMBER.sub(".N", parameter_name)


def gradient_summary(model: torch.nn.Module) -> dict[str, Any]:
    named = [(name, p.grad) for name, p in model.named_parameters() if p.grad is not None]
    bad = {name for name, grad in named if not bool(torch.isfinite(grad).all())}
    finite_norms = [grad.float().norm() for name, grad in named if name not in bad]
    return {
        "parameters_with_gradient": len(named),
        "non_finite": len(bad),
        "non_finite_by_module": dict(Counter(module_group(name) for name, _ in named if name in bad).most_common(40)),
        "finite_by_module": dict(Counter(module_group(name) for name, _ in named if name not in bad).most_common(12)),
        "norm_of_the_finite": round(float(torch.stack(finite_norms).norm()), 6) if finite_norms else None,
    }


def tensor_summary(value: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return None
    floats = value.detach().float()
    return {
        "shape": list(value.shape), "dtype": str(value.dtype), "finite": bool(torch.isfinite(floats).all()),
        "min": round(float(floats.min()), 4) if floats.numel() else None,
        "max": round(float(floats.max()), 4) if floats.numel() else None,
        "nonzero": int((floats != 0).sum()),
    }


@contextlib.contextmanager
def torch_log_probs() -> Iterator[None]:
    import trl.kernels.chunked_logprob as kernels
    import trl.trainer.utils as trl_utils

    modules = [module for module in (kernels, trl_utils) if hasattr(module, "_use_triton")]
    originals = [module._use_triton for module in modules]
    for module in modules:
        module._use_triton = lambda device: False
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            module._use_triton = original


@contextlib.contextmanager
def without_gradient_checkpointing(model: torch.nn.Module, kwargs: dict[str, Any] | None) -> Iterator[None]:
    owner = next((m for m in model.modules() if getattr(m, "is_gradient_checkpointing", False)), None)
    if owner is None:
        yield
        return
    owner.gradient_checkpointing_disable()
    try:
        yield
    finally:
        owner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def sdpa_math() -> contextlib.AbstractContextManager[None]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


@contextlib.contextmanager
def unchanged() -> Iterator[None]:
    yield


class LossCapture:
    """Wraps ``trainer.compute_loss`` and keeps the arguments of its first call, to recompute that loss."""

    def __init__(self, trainer: Any) -> None:
        self.call: tuple[Any, Any, dict[str, Any]] | None = None
        original = trainer.compute_loss

        def compute_loss(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            if self.call is None:
                self.call = (model, inputs, kwargs)
            return original(model, inputs, *args, **kwargs)

        self.original = original
        trainer.compute_loss = compute_loss

    def recompute(self) -> torch.Tensor:
        assert self.call is not None, "no step has computed a loss yet"
        model, inputs, kwargs = self.call
        return self.original(model, inputs, **kwargs)


def first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def masked_rows(mask: Any) -> dict[str, Any] | None:
    """How many query rows of an attention mask let no key through (boolean: all False; additive: all at the minimum)."""
    if not isinstance(mask, torch.Tensor) or mask.dim() < 2:
        return None
    blocked = ~mask if mask.dtype == torch.bool else mask <= torch.finfo(mask.dtype).min / 2
    return {"shape": list(mask.shape), "dtype": str(mask.dtype), "rows_all_blocked": int(blocked.all(dim=-1).sum())}


@contextlib.contextmanager
def layer_trace(model: torch.nn.Module, trace: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Per decoder layer, attention and MLP: the forward output's largest magnitude and RMS, its smallest row's RMS
    and position, the largest magnitude of the gradient reaching it and its position, and for attention the rows
    its mask blocks entirely. The first forward of each module is kept (gradient checkpointing runs a second);
    gradients keep their largest value over calls."""
    handles = []

    def watch(name: str):
        def hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            tensor = first_tensor(output)
            entry = trace.setdefault(name, {})
            if tensor is None:
                return
            if "forward_max" not in entry:
                values = tensor.detach().float()
                entry["forward_max"] = float(values.abs().max())
                entry["forward_rms"] = float(values.pow(2).mean().sqrt())
                entry["forward_finite"] = bool(torch.isfinite(values).all())
                row_rms = values.pow(2).mean(-1).sqrt().flatten()
                entry["smallest_row_rms"], entry["smallest_row_position"] = float(row_rms.min()), int(row_rms.argmin()) % values.shape[-2]
                if "attention_mask" in kwargs:
                    entry["mask"] = masked_rows(kwargs["attention_mask"])
            if tensor.requires_grad:
                def on_gradient(grad: torch.Tensor) -> None:
                    grad = grad.detach().float()
                    finite = bool(torch.isfinite(grad).all())
                    entry["gradient_finite"] = entry.get("gradient_finite", True) and finite
                    finite_values = grad[torch.isfinite(grad)]
                    largest = float(finite_values.abs().max()) if finite_values.numel() else 0.0
                    if largest >= entry.get("gradient_max", 0.0):
                        entry["gradient_max"] = largest
                        worst = grad.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).abs().amax(-1).flatten()
                        entry["gradient_max_position"] = int(worst.argmax()) % grad.shape[-2]
                    entry["gradient_nan"] = entry.get("gradient_nan", 0) + int(torch.isnan(grad).sum())
                    entry["gradient_inf"] = entry.get("gradient_inf", 0) + int(torch.isinf(grad).sum())

                tensor.register_hook(on_gradient)
        return hook

    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind.endswith(("DecoderLayer", "Attention", "MLP")) and "vision" not in name:
            handles.append(module.register_forward_hook(watch(name), with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def drop_gradients(model: torch.nn.Module) -> None:
    for parameter in model.parameters():
        parameter.grad = None


def run_variant(capture: LossCapture, model: torch.nn.Module, context: Callable[[], Any]) -> dict[str, Any]:
    drop_gradients(model)
    result: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.enable_grad(), context():  # a harness import may have switched autograd off process-wide
                loss = capture.recompute()
                result["loss"] = float(loss.detach())
                loss.backward()
            result.update(gradient_summary(model))
        except RuntimeError as error:  # anomaly mode raises at the first backward function that returns NaN
            result["error"] = str(error)[:2000]
    forward_traces = [str(w.message) for w in caught if "Traceback of forward call" in str(w.message)]
    if forward_traces:
        result["forward_trace"] = forward_traces[0][-4000:]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result


@dataclass
class Situation:
    """What a variant may change: the policy, the Trainer's settings, and where the layer trace goes."""

    policy: torch.nn.Module
    gradient_checkpointing_kwargs: dict[str, Any] | None
    trace: dict[str, dict[str, Any]] = field(default_factory=dict)


VARIANTS: dict[str, Callable[[Situation], contextlib.AbstractContextManager[Any]]] = {
    "as_trained": lambda situation: unchanged(),
    "torch_log_probs": lambda situation: torch_log_probs(),
    "sdpa_math": lambda situation: sdpa_math(),
    "anomaly": lambda situation: torch.autograd.detect_anomaly(check_nan=True),
    "no_gradient_checkpointing": lambda situation: without_gradient_checkpointing(
        situation.policy, situation.gradient_checkpointing_kwargs),
    "traced": lambda situation: layer_trace(situation.policy, situation.trace),
}


def with_random_advantages(inputs: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """The step's inputs with standard-normal advantages: a gradient that is not zero when every reward of a group ties."""
    advantages = inputs["advantages"]
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randn(advantages.shape, generator=generator).to(advantages.device, advantages.dtype)
    return {**inputs, "advantages": drawn}


def diagnosis_callback(trainer: Any, report: dict[str, Any], save: Callable[[], None], variants: list[str] | None = None,
                       random_advantages: bool = False):
    """A callback, run before every other, that diagnoses the first optimizer step's gradient under ``variants``
    (all of :data:`VARIANTS` when None) and stops the run."""
    from transformers import TrainerCallback

    capture = LossCapture(trainer)
    chosen = list(VARIANTS) if not variants else variants

    class GradientDiagnosis(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if "diagnosis" in report or capture.call is None:
                return
            policy, inputs, loss_kwargs = capture.call
            if random_advantages:
                inputs = with_random_advantages(inputs)
                capture.call = (policy, inputs, loss_kwargs)
            situation = Situation(policy, args.gradient_checkpointing_kwargs)
            diagnosis: dict[str, Any] = {"random_advantages": random_advantages, "inputs": {key: tensor_summary(inputs.get(key)) for key in (
                "advantages", "ref_per_token_logps", "old_per_token_logps", "completion_mask", "pixel_values")}}
            diagnosis["layers"] = situation.trace
            report["diagnosis"] = diagnosis
            for name in chosen:
                diagnosis[name] = run_variant(capture, model, lambda name=name: VARIANTS[name](situation))
                print(f"diagnosis {name}: {diagnosis[name]}"[:3000], flush=True)
                save()
            drop_gradients(model)
            control.should_training_stop = True

    return GradientDiagnosis()
