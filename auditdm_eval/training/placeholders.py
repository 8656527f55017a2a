"""Keep the policy's image placeholders out of the distribution GRPO scores, not only out of what it samples.

trl's ``GRPOTrainer`` suppresses the image token while the policy samples (a sampled placeholder would
mismatch the image features), but scores the sampled tokens, for the policy and for the KL reference, with
a softmax over the whole vocabulary. Nothing is ever sampled there, so the loss never pushes that logit
down, and every completion with a negative advantage pushes mass towards it: measured on the world
auditor, the image token's log-probability rose from -13.6 on average after 500 steps to near 0 at some
positions after 3,000. The sampled tokens' log-probabilities under the scored distribution then fall far
below their sampling probabilities, and the k3 KL estimate ``exp(ref - policy) - (ref - policy) - 1``
grows without bound (1e12 from about step 1,000 of a red/green run), swamping the advantages.

:func:`mask_placeholders` gives the language-model head a fixed, non-persistent bias of -1e4 on those
ids, so sampling and scoring use the same distribution. trl's fused log-probability head reads the head's
bias, and so does every forward, generation included. Nothing of it is saved with a checkpoint; the
audit's generation suppresses the same ids (``model_adapters``' ``placeholder_token_ids``).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

MASKED_LOGIT = -1e4  # exp() of it is 0 in float32 and bfloat16; a finite value keeps entropy sums free of 0 * inf


def mask_placeholders(model: Any, token_ids: list[int]) -> None:
    """Give ``model``'s output head a bias of :data:`MASKED_LOGIT` on ``token_ids`` (again: the same mask)."""
    import torch

    head = model.get_output_embeddings()
    if not token_ids or head is None:
        return
    if head._parameters.get("bias") is not None:  # a trained bias stays trainable: leave that head as it is
        logger.warning("the output head has a trained bias: placeholder ids %s stay in the scored distribution", token_ids)
        return
    head._parameters.pop("bias", None)
    bias = torch.zeros(head.weight.shape[0], dtype=head.weight.dtype, device=head.weight.device)
    bias[token_ids] = MASKED_LOGIT
    head.register_buffer("bias", bias, persistent=False)
