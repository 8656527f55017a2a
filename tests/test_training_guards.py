"""The gradient guard: an optimizer step with a NaN or inf gradient is refused before it changes a weight."""

import math

import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from auditdm_eval.training.guards import NonFiniteGradient, finite_gradient_guard


def step_of(guard, model, tmp_path):
    state = TrainerState()
    state.global_step = 4
    guard.on_pre_optimizer_step(TrainingArguments(output_dir=str(tmp_path), report_to=[]), state, TrainerControl(), model=model)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_gradient_stops_training_before_the_optimizer_step(tmp_path, bad):
    model = torch.nn.Linear(3, 2)
    with torch.enable_grad():  # a harness import elsewhere in the session may switch autograd off
        model(torch.ones(1, 3)).sum().backward()
    weights = model.weight.detach().clone()
    guard = finite_gradient_guard(tmp_path / "run")
    step_of(guard, model, tmp_path)  # finite: nothing happens
    model.bias.grad[0] = bad
    with pytest.raises(NonFiniteGradient, match=r"step 5: the gradient's norm is (nan|inf).*--dtype float32"):
        step_of(guard, model, tmp_path)
    assert torch.equal(model.weight, weights) and NonFiniteGradient.exit_code == 1


def test_a_model_without_gradients_passes(tmp_path):
    step_of(finite_gradient_guard(tmp_path), torch.nn.Linear(3, 2), tmp_path)
