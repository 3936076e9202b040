"""Per-sequence logits processing and sampling.

Order, per sequence and step: raw logits (float32) -> + logit_bias -> - frequency/presence penalties
(OpenAI formula, over the tokens generated so far, not the prompt) = *processed logits*.
The reported logprobs are `log_softmax(processed logits)`: after bias and penalties, before
temperature/top-k/top-p. Greedy (temperature 0) takes the argmax of the processed logits;
otherwise the processed logits are divided by the temperature, filtered by top-k then top-p, and
one token is drawn with the sequence's own `torch.Generator`, so a seed gives the same tokens
whatever else shares the batch.
"""

from __future__ import annotations

import secrets

import torch

from .types import SamplingParams


class SequenceSampler:
    """Sampling state of one sequence: its generator, bias vector and generated-token counts."""

    def __init__(self, params: SamplingParams, vocab_size: int, device: torch.device) -> None:
        self.params = params
        # A temperature that is 0 as a float32 (e.g. 1e-320) would divide the logits by zero: greedy.
        self.greedy = params.temperature <= 0.0 or float(torch.tensor(params.temperature, dtype=torch.float32)) == 0.0
        self.seed = params.seed if params.seed is not None else secrets.randbits(63)
        self.generator: torch.Generator | None = None
        if not self.greedy:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(self.seed)
        self.bias: torch.Tensor | None = None
        if params.logit_bias:
            ids = [t for t in params.logit_bias if 0 <= t < vocab_size]
            if ids:
                self.bias = torch.zeros(vocab_size, dtype=torch.float32, device=device)
                self.bias[torch.tensor(ids, device=device)] = torch.tensor(
                    [float(params.logit_bias[t]) for t in ids], dtype=torch.float32, device=device
                )
        self.penalised = params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
        self.counts: torch.Tensor | None = (
            torch.zeros(vocab_size, dtype=torch.float32, device=device) if self.penalised else None
        )

    @property
    def needs_processing(self) -> bool:
        return self.bias is not None or self.penalised

    def process(self, logits: torch.Tensor) -> torch.Tensor:
        """Apply logit_bias and penalties to one row of float32 logits (returns a new tensor)."""
        if self.bias is not None:
            logits = logits + self.bias
        if self.counts is not None:
            p = self.params
            logits = (
                logits - self.counts * p.frequency_penalty - (self.counts > 0).float() * p.presence_penalty
            )
        return logits

    def record(self, token_id: int) -> None:
        if self.counts is not None and 0 <= token_id < self.counts.shape[0]:
            self.counts[token_id] += 1.0

    def sample(self, processed: torch.Tensor) -> torch.Tensor:
        """Draw one token (0-d long tensor, on the logits' device) from one row of processed logits."""
        p = self.params
        x = processed / p.temperature
        if not bool(torch.isfinite(x).all()):
            # A tiny temperature (e.g. 1e-320) overflows the division: the same distribution,
            # shifted so that its best logit is 0, keeps every value finite or -inf.
            x = (processed - processed.max()) / p.temperature
        vocab = x.shape[-1]
        if 0 < p.top_k < vocab:
            kth = torch.topk(x, p.top_k).values[-1]
            x = x.masked_fill(x < kth, float("-inf"))
        if p.top_p < 1.0:
            sorted_x, order = torch.sort(x, descending=True)
            probs = torch.softmax(sorted_x, dim=-1)
            before = torch.cumsum(probs, dim=-1) - probs  # mass of strictly better tokens
            drop_sorted = before >= p.top_p
            drop_sorted[0] = False  # always keep the best token
            drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
            x = x.masked_fill(drop, float("-inf"))
        probs = torch.softmax(x, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[0]
