"""POST /v1/completions: prompts -> choices, streamed or not, following the server's profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from reference_server.config import ServerConfig
from reference_server.engine.types import PromptLogprob

from .. import common
from ..detokenize import TokenText, decode
from ..errors import invalid_request, unsupported_parameter
from ..generation import ChoiceJob, Piece, TokenRecord, collect_all, start_jobs
from ..protocol import usage_dict
from ..sse import ChunkFrame, EventStreamResponse, dumps, dumps_str
from ..streaming import UsagePlacement, run_unless_disconnected, stream_events
from .protocol import CompletionRequest

DEFAULT_MAX_TOKENS = 16


@dataclass
class Prompt:
    text: str  # what echo prepends
    ids: list[int]


class OpenAIServingCompletion:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.tokens = TokenText(config.tokenizer)

    # ------------------------------------------------------------------ request checks

    def _encode(self, text: str) -> list[int]:
        tok = self.config.tokenizer
        ids = [int(t) for t in tok.encode(text, add_special_tokens=True)]
        if not ids:  # an empty prompt: generate as from the start of a document
            sep = getattr(tok, "bos_token_id", None)
            if sep is None:
                sep = next(iter(sorted(self.config.eos_token_ids)), None)
            if sep is None:
                raise invalid_request("The prompt must not be empty.", "prompt", "invalid_value")
            ids = [int(sep)]
        return ids

    def _token_prompt(self, ids: list[Any], param: str) -> Prompt:
        vocab = self.config.vocab_size
        for i, t in enumerate(ids):
            if isinstance(t, bool) or not isinstance(t, int) or t < 0 or (vocab is not None and t >= vocab):
                raise invalid_request(f"Invalid token id in '{param}[{i}]': {t!r}.", f"{param}[{i}]", "invalid_value")
        if not ids:
            raise invalid_request(f"Invalid '{param}': empty token array.", param, "invalid_value")
        return Prompt(decode(self.config.tokenizer, ids), list(ids))

    def parse_prompts(self, prompt: Any) -> list[Prompt]:
        if prompt is None:
            prompt = ""
        if isinstance(prompt, str):
            return [Prompt(prompt, self._encode(prompt))]
        if not isinstance(prompt, list):
            raise invalid_request(
                "Invalid type for 'prompt': expected a string, an array of strings, an array of token ids "
                "or an array of token-id arrays.",
                "prompt",
                "invalid_type",
            )
        if not prompt:
            raise invalid_request("Invalid 'prompt': empty array.", "prompt", "invalid_value")
        if len(prompt) > self.config.limits.max_prompts:
            raise invalid_request(
                f"Invalid 'prompt': at most {self.config.limits.max_prompts} prompts per request.",
                "prompt",
                "array_above_max_length",
            )
        if all(isinstance(p, str) for p in prompt):
            return [Prompt(p, self._encode(p)) for p in prompt]
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return [self._token_prompt(prompt, "prompt")]
        if all(isinstance(p, list) for p in prompt):
            return [self._token_prompt(p, f"prompt[{i}]") for i, p in enumerate(prompt)]
        raise invalid_request(
            "Invalid type for 'prompt': an array must hold only strings, only token ids or only token-id arrays.",
            "prompt",
            "invalid_type",
        )

    # ------------------------------------------------------------------ request

    async def create(self, req: CompletionRequest, raw: Request) -> Response:
        cfg = self.config
        common.check_model(cfg, req.model)
        stream = bool(req.stream)
        include_usage = common.check_stream_options(stream, req.stream_options)
        n = common.check_n(cfg, req.n)
        common.check_max_tokens(req.max_tokens, "max_tokens")
        seed = common.check_seed(req.seed)
        stops = common.parse_stops(cfg, req.stop)
        presence, frequency = common.penalties(cfg, req.presence_penalty, req.frequency_penalty)
        logit_bias = common.parse_logit_bias(cfg, req.logit_bias)
        samples = n
        common.param_mode(cfg, "best_of", req.best_of)  # a rejected non-default value raises
        if cfg.profile.param_mode("best_of") == "supported" and req.best_of is not None:
            if req.best_of < n:
                raise invalid_request(
                    f"Invalid 'best_of': it must be greater than or equal to 'n' ({req.best_of} < {n}).",
                    "best_of",
                    "invalid_value",
                )
            if stream and req.best_of > 1:
                raise invalid_request("'best_of' cannot be used with 'stream'.", "best_of", "invalid_value")
            samples = req.best_of
        if req.suffix:
            raise unsupported_parameter("suffix")
        mode = common.overflow_mode(cfg, req.context_length_exceeded_behavior)
        prompts = self.parse_prompts(req.prompt)
        requested = DEFAULT_MAX_TOKENS if req.max_tokens is None else req.max_tokens
        budgets = [common.resolve_max_tokens(cfg, len(p.ids), requested, mode, chat=False) for p in prompts]
        common.check_request_tokens(cfg, budgets, samples, n, "max_tokens")
        want_logprobs = req.logprobs is not None
        top = req.logprobs or 0
        echo = bool(req.echo)

        jobs: list[ChoiceJob] = []
        for p_idx, (prompt, budget) in enumerate(zip(prompts, budgets, strict=True)):
            for s in range(samples):
                index = p_idx * samples + s
                jobs.append(common.choice_job(
                    cfg, req, index=index, prompt_ids=prompt.ids, budget=budget, seed=common.choice_seed(seed, s),
                    stops=stops, presence_penalty=presence, frequency_penalty=frequency, logit_bias=logit_bias,
                    top_logprobs=top if want_logprobs else 0, prompt_index=p_idx,
                ))

        prompt_lps: list[list[PromptLogprob] | None] = [None] * len(prompts)
        if echo and want_logprobs:
            for i, p in enumerate(prompts):
                prompt_lps[i] = await cfg.engine.prompt_logprobs(p.ids, top)

        prompt_tokens = sum(len(p.ids) for p in prompts)
        response_id = common.new_id("cmpl")
        created = common.now()
        start_jobs(cfg.engine, jobs)  # EngineOverloaded -> 429 before anything is sent
        ctx = _Ctx(self, req.model, response_id, created, echo, want_logprobs, prompts, prompt_lps)
        if stream:
            return self._stream(jobs, ctx, include_usage, prompt_tokens)
        results = await run_unless_disconnected(raw, collect_all(jobs))
        return self._response(jobs, results, ctx, n, samples, prompt_tokens)

    # ------------------------------------------------------------------ responses

    def _response(
        self, jobs: list[ChoiceJob], results: list[list[Piece]], ctx: _Ctx, n: int, samples: int, prompt_tokens: int
    ) -> Response:
        by_prompt: dict[int, list[tuple[ChoiceJob, list[Piece]]]] = {}
        for job, pieces in zip(jobs, results, strict=True):
            by_prompt.setdefault(job.prompt_index, []).append((job, pieces))
        choices: list[dict[str, Any]] = []
        for p_idx in sorted(by_prompt):
            group = by_prompt[p_idx]
            if samples > n:  # best_of: the n samples with the highest cumulative logprob
                group = sorted(group, key=lambda jp: -jp[0].processor.cumulative_logprob)[:n]
            for rank, (job, pieces) in enumerate(group):
                proc = job.processor
                records = [r for piece in pieces for r in piece.tokens]
                base = ctx.prompts[p_idx].text if ctx.echo else ""
                choices.append(
                    {
                        "finish_reason": proc.finish_reason,
                        "index": p_idx * n + rank,
                        "logprobs": ctx.logprobs(p_idx, records, include_prompt=True) if ctx.want_logprobs else None,
                        "text": base + (proc.final_text or ""),
                    }
                )
        completion_tokens = sum(job.processor.completion_tokens for job in jobs)
        body = {
            "id": ctx.response_id,
            "choices": choices,
            "created": ctx.created,
            "model": ctx.model,
            "system_fingerprint": self.config.system_fingerprint,
            "object": "text_completion",
            "usage": usage_dict(prompt_tokens, completion_tokens),
        }
        return JSONResponse(body)

    def _stream(self, jobs: list[ChoiceJob], ctx: _Ctx, include_usage: bool, prompt_tokens: int) -> Response:
        placement = UsagePlacement(self.config, include_usage)
        template = {
            "id": ctx.response_id,
            "choices": [],
            "created": ctx.created,
            "model": ctx.model,
            "system_fingerprint": self.config.system_fingerprint,
            "object": "text_completion",
        }
        frame = ChunkFrame(placement.field(template))
        job_of = {job.index: job for job in jobs}
        # A choice is {"finish_reason","index","logprobs","text"}; the usual one (no finish, no
        # logprobs) is written from a prefix serialized once per choice index.
        plain = {job.index: f'{{"finish_reason":null,"index":{job.index},"logprobs":null,"text":' for job in jobs}
        want_logprobs = ctx.want_logprobs

        def make_choice(piece: Piece) -> str:
            if piece.finish_reason is None and not want_logprobs:
                return plain[piece.index] + dumps_str(piece.text) + "}"
            job = job_of[piece.index]
            logprobs = ctx.logprobs(job.prompt_index, piece.tokens, include_prompt=False) if want_logprobs else None
            return dumps(
                {"finish_reason": piece.finish_reason, "index": piece.index, "logprobs": logprobs, "text": piece.text}
            )

        first: list[str] = []
        if ctx.echo:
            for job in jobs:
                p = job.prompt_index
                lp = ctx.logprobs(p, [], include_prompt=True) if want_logprobs else None
                first.append(
                    dumps({"finish_reason": None, "index": job.index, "logprobs": lp, "text": ctx.prompts[p].text})
                )
        return EventStreamResponse(stream_events(jobs, placement, frame, make_choice, first, prompt_tokens))


class _Ctx:
    """Per-request values the response builders need."""

    def __init__(
        self,
        serving: OpenAIServingCompletion,
        model: str,
        response_id: str,
        created: int,
        echo: bool,
        want_logprobs: bool,
        prompts: list[Prompt],
        prompt_lps: list[list[PromptLogprob] | None],
    ) -> None:
        self.serving = serving
        self.model = model
        self.response_id = response_id
        self.created = created
        self.echo = echo
        self.want_logprobs = want_logprobs
        self.prompts = prompts
        self.prompt_lps = prompt_lps
        self._prompt_offsets: dict[int, list[int]] = {}

    def _offsets(self, p_idx: int) -> list[int]:
        if p_idx not in self._prompt_offsets:
            ids = self.prompts[p_idx].ids
            tok = self.serving.config.tokenizer
            self._prompt_offsets[p_idx] = [len(decode(tok, ids[:i])) for i in range(len(ids))]
        return self._prompt_offsets[p_idx]

    def logprobs(self, p_idx: int, records: list[TokenRecord], *, include_prompt: bool) -> dict[str, Any]:
        text = self.serving.tokens.text
        out: dict[str, Any] = {"text_offset": [], "token_logprobs": [], "tokens": [], "top_logprobs": []}
        base = 0
        if self.echo:
            base = len(self.prompts[p_idx].text)
            lps = self.prompt_lps[p_idx]
            if include_prompt and lps is not None:
                offsets = self._offsets(p_idx)
                for pos, plp in enumerate(lps):
                    out["text_offset"].append(offsets[pos] if pos < len(offsets) else base)
                    out["token_logprobs"].append(plp.logprob)
                    out["tokens"].append(text(plp.token_id))
                    if plp.logprob is None:
                        out["top_logprobs"].append(None)
                    else:
                        top = {text(t): lp for t, lp in plp.top_logprobs}
                        top.setdefault(text(plp.token_id), plp.logprob)
                        out["top_logprobs"].append(top)
        for r in records:
            out["text_offset"].append(base + r.start)
            out["token_logprobs"].append(r.logprob)
            out["tokens"].append(text(r.token_id))
            top = {text(t): lp for t, lp in r.top_logprobs}
            top.setdefault(text(r.token_id), r.logprob)
            out["top_logprobs"].append(top)
        return out
