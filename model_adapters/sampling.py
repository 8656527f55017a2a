"""Per-request sampling inside one batched ``generate`` call.

``transformers`` samples a whole batch from one random generator, so a request's text would
depend on the requests it shares a batch with. Here each sampled row draws from its own
generator, seeded by its request: softmax(logits / T) restricted to the top-p mass is sampled
with the Gumbel-max trick (argmax of logits / T + Gumbel noise), and ``generate`` then decodes
greedily. Greedy rows are left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from .protocol import GenerationRequest


def top_p_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``logits`` with every token outside the smallest set holding ``top_p`` of the mass set to -inf."""
    if top_p >= 1.0:
        return logits
    ordered, order = torch.sort(logits, descending=True)
    cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
    outside = cumulative - torch.softmax(ordered, dim=-1) >= top_p  # the mass before a token already reaches top_p
    outside[..., 0] = False
    masked = logits.clone()
    masked[order[outside]] = float("-inf")
    return masked


class PerRequestSampling(LogitsProcessor):
    def __init__(self, requests: Sequence[GenerationRequest]):
        self.rows = [
            (row, request.settings.temperature, request.settings.top_p, torch.Generator().manual_seed(request.seed))
            for row, request in enumerate(requests)
            if request.settings.sampling
        ]

    @property
    def active(self) -> bool:
        return bool(self.rows)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        for row, temperature, top_p, generator in self.rows:
            logits = top_p_mask(scores[row].float() / temperature, top_p)
            uniform = torch.rand(logits.shape, generator=generator).clamp(1e-10, 1 - 1e-7)
            gumbel = -torch.log(-torch.log(uniform)).to(logits.device)
            scores[row] = (logits + gumbel).to(scores.dtype)
        return scores
