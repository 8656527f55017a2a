"""Stop training at the first gradient that is not finite, before the optimizer applies it.

A NaN gradient poisons every weight it touches, even at a learning rate of 0 (Adam's update is then
``0 * NaN``), and the Trainer applies it regardless: the next step's sampling then fails inside a CUDA
kernel ("probability tensor contains either inf, nan or element < 0"), far from the cause, and a
checkpoint saved in between holds NaN weights. Measured on the H200 at real sizes with random weights
(``benchmarks/results/real-size-grpo-h200-*.json``); the cause there was the random builds' zero ``<bos>``
embedding, since fixed (README, "GRPO at real sizes"). The guard checks the gradient's norm once per
optimizer step (one reduction, one sync) and raises :class:`NonFiniteGradient` instead. ``train-auditor``
and the rectification recipes (``auditdm_eval.rectify.train``) both install it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import AuditDMError


class NonFiniteGradient(AuditDMError):
    exit_code = 1


def finite_gradient_guard(output_dir: str | Path):
    """A ``transformers`` callback raising :class:`NonFiniteGradient` before an optimizer step whose gradient is NaN or inf."""
    import torch
    from transformers import TrainerCallback

    class FiniteGradientGuard(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            grads = [p.grad for p in model.parameters() if p.grad is not None] if model is not None else []
            if not grads:
                return
            norm = torch.nn.utils.get_total_norm(grads)
            if not bool(torch.isfinite(norm)):
                raise NonFiniteGradient(
                    f"step {state.global_step + 1}: the gradient's norm is {norm.item()}; the step was not applied and no "
                    f"checkpoint holds it (the last whole checkpoint in {output_dir} is untouched). Check that the auditor "
                    "loads and writes text (`auditdm audit --auditor ...`), then try --dtype float32, a lower "
                    "--learning_rate or --max_grad_norm; the same command resumes from the last checkpoint"
                )

    return FiniteGradientGuard()
