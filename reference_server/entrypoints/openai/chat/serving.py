"""POST /v1/chat/completions: messages -> chat template -> choices, streamed or not, per profile."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from reference_server.config import ServerConfig

from .. import common
from ..detokenize import TokenText
from ..errors import invalid_request
from ..generation import ChoiceJob, Piece, TokenRecord, collect_all, start_jobs
from ..protocol import usage_dict
from ..sse import ChunkFrame, EventStreamResponse, dumps, dumps_str
from ..streaming import UsagePlacement, run_unless_disconnected, stream_events
from .protocol import ChatCompletionRequest, ChatMessage

ROLES = ("developer", "system", "user", "assistant", "tool", "function")

# Used only when neither the server config nor the tokenizer has a chat template.
FALLBACK_TEMPLATE = (
    "{%- for message in messages -%}{{- message['role'] + ': ' + (message['content'] or '') + '\\n' -}}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{- 'assistant: ' -}}{%- endif -%}"
)


class OpenAIServingChat:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.tokens = TokenText(config.tokenizer)

    # ------------------------------------------------------------------ prompt

    def _content(self, msg: ChatMessage, i: int) -> str | None:
        content = msg.content
        where = f"messages[{i}].content"
        if content is None:
            if msg.role == "function" or (msg.role == "assistant" and (msg.tool_calls or msg.function_call)):
                return None
            raise invalid_request(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            raise invalid_request(
                f"Invalid type for '{where}': expected a string or an array of content parts.", where, "invalid_type"
            )
        if not content:
            raise invalid_request(
                f"Invalid '{where}': empty array. Expected an array with minimum length 1.", where, "empty_array"
            )
        texts: list[str] = []
        for j, part in enumerate(content):
            pwhere = f"{where}[{j}]"
            if not isinstance(part, dict):
                raise invalid_request(f"Invalid type for '{pwhere}': expected an object.", pwhere, "invalid_type")
            kind = part.get("type")
            if kind == "text" or (kind == "refusal" and msg.role == "assistant"):
                key = "text" if kind == "text" else "refusal"
                value = part.get(key)
                if not isinstance(value, str):
                    raise invalid_request(
                        f"Invalid type for '{pwhere}.{key}': expected a string.", f"{pwhere}.{key}", "invalid_type"
                    )
                if kind == "text":
                    texts.append(value)
            elif kind in ("image_url", "input_audio", "file"):
                raise invalid_request(
                    f"Invalid content part '{pwhere}.type': {kind!r} is not supported by this model (text only).",
                    f"{pwhere}.type",
                    "invalid_value",
                )
            else:
                raise invalid_request(
                    f"Invalid value for '{pwhere}.type': {kind!r}.", f"{pwhere}.type", "invalid_value"
                )
        return "".join(texts)

    def conversation(self, messages: list[ChatMessage]) -> list[dict[str, Any]]:
        if len(messages) > self.config.limits.max_messages:
            raise invalid_request(
                f"Invalid 'messages': at most {self.config.limits.max_messages} messages per request.",
                "messages",
                "array_above_max_length",
            )
        out: list[dict[str, Any]] = []
        for i, msg in enumerate(messages):
            if msg.role not in ROLES:
                raise invalid_request(
                    f"Invalid value for 'messages[{i}].role': {msg.role!r}. Supported values are: "
                    + ", ".join(repr(r) for r in ROLES)
                    + ".",
                    f"messages[{i}].role",
                    "invalid_value",
                )
            if msg.role == "tool" and not msg.tool_call_id:
                where = f"messages[{i}].tool_call_id"
                raise invalid_request(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
            if msg.role == "function" and not msg.name:
                where = f"messages[{i}].name"
                raise invalid_request(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
            entry: dict[str, Any] = {"role": msg.role, "content": self._content(msg, i)}
            for key in ("name", "tool_calls", "tool_call_id", "function_call"):
                value = getattr(msg, key)
                if value is not None:
                    entry[key] = value
            out.append(entry)
        return out

    def render(self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        tok = self.config.tokenizer
        template = self.config.chat_template or getattr(tok, "chat_template", None) or FALLBACK_TEMPLATE
        try:
            text = tok.apply_chat_template(
                conversation, tools=tools or None, chat_template=template, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # the template rejected the conversation (jinja raise_exception)
            raise invalid_request(f"Invalid 'messages': {exc}", "messages", "invalid_value") from None
        return [int(t) for t in tok.encode(text, add_special_tokens=False)]

    # ------------------------------------------------------------------ request

    async def create(self, req: ChatCompletionRequest, raw: Request) -> Response:
        cfg = self.config
        common.check_model(cfg, req.model)
        stream = bool(req.stream)
        include_usage = common.check_stream_options(stream, req.stream_options)
        n = common.check_n(cfg, req.n)
        if req.max_completion_tokens is not None:
            common.check_max_tokens(req.max_completion_tokens, "max_completion_tokens")
            requested: int | None = req.max_completion_tokens
        else:
            common.check_max_tokens(req.max_tokens, "max_tokens")
            requested = req.max_tokens
        seed = common.check_seed(req.seed)
        stops = common.parse_stops(cfg, req.stop)
        presence, frequency = common.penalties(cfg, req.presence_penalty, req.frequency_penalty)
        logit_bias = common.parse_logit_bias(cfg, req.logit_bias)
        tools = list(req.tools or [])
        if common.param_mode(cfg, "functions", req.functions) == "supported":
            tools += [{"type": "function", "function": f} for f in req.functions or []]
        want_logprobs = bool(req.logprobs)
        top = req.top_logprobs or 0
        if top and not want_logprobs:
            raise invalid_request(
                "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
                "top_logprobs",
                "invalid_value",
            )
        fmt = req.response_format
        if fmt is not None and fmt.get("type") != "text":
            raise invalid_request(
                f"Invalid 'response_format': type {fmt.get('type')!r} is not supported by this server.",
                "response_format",
                "unsupported_value",
            )
        mode = common.overflow_mode(cfg, req.context_length_exceeded_behavior)
        prompt_ids = self.render(self.conversation(req.messages), tools)
        budget = common.resolve_max_tokens(cfg, len(prompt_ids), requested, mode, chat=True)
        max_param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        common.check_request_tokens(cfg, [budget], n, n, max_param)

        jobs: list[ChoiceJob] = []
        for i in range(n):
            jobs.append(common.choice_job(
                cfg, req, index=i, prompt_ids=prompt_ids, budget=budget, seed=common.choice_seed(seed, i),
                stops=stops, presence_penalty=presence, frequency_penalty=frequency, logit_bias=logit_bias,
                top_logprobs=top if want_logprobs else 0,
            ))

        response_id = common.new_id("chatcmpl")
        created = common.now()
        start_jobs(cfg.engine, jobs)  # EngineOverloaded -> 429 before anything is sent
        if stream:
            return self._stream(jobs, req.model, response_id, created, want_logprobs, include_usage, len(prompt_ids))
        results = await run_unless_disconnected(raw, collect_all(jobs))
        choices = []
        for job, pieces in zip(jobs, results, strict=True):
            records = [r for piece in pieces for r in piece.tokens]
            choices.append(
                {
                    "finish_reason": job.processor.finish_reason,
                    "index": job.index,
                    "message": {"content": job.processor.final_text or "", "refusal": None, "role": "assistant"},
                    "logprobs": self._logprobs(records) if want_logprobs else None,
                }
            )
        body = {
            "id": response_id,
            "choices": choices,
            "created": created,
            "model": req.model,
            "system_fingerprint": cfg.system_fingerprint,
            "object": "chat.completion",
            "usage": usage_dict(len(prompt_ids), sum(job.processor.completion_tokens for job in jobs)),
        }
        return JSONResponse(body)

    def _logprobs(self, records: list[TokenRecord]) -> dict[str, Any]:
        tt = self.tokens
        content = [
            {
                "token": tt.text(r.token_id),
                "logprob": r.logprob,
                "bytes": tt.bytes_list(r.token_id),
                "top_logprobs": [
                    {"token": tt.text(t), "logprob": lp, "bytes": tt.bytes_list(t)} for t, lp in r.top_logprobs
                ],
            }
            for r in records
        ]
        return {"content": content, "refusal": None}

    def _stream(
        self,
        jobs: list[ChoiceJob],
        model: str,
        response_id: str,
        created: int,
        want_logprobs: bool,
        include_usage: bool,
        prompt_tokens: int,
    ) -> Response:
        placement = UsagePlacement(self.config, include_usage)
        template = {
            "id": response_id,
            "choices": [],
            "created": created,
            "model": model,
            "system_fingerprint": self.config.system_fingerprint,
            "object": "chat.completion.chunk",
        }
        frame = ChunkFrame(placement.field(template))
        # A choice is {"delta","logprobs","finish_reason","index"}; the usual one (no finish, no
        # logprobs) is written around the delta's JSON string with pieces serialized once.
        plain_tail = {job.index: f',"logprobs":null,"finish_reason":null,"index":{job.index}}}' for job in jobs}

        def make_choice(piece: Piece) -> str:
            if piece.finish_reason is None and not want_logprobs:
                delta = '{"delta":{"content":' + dumps_str(piece.text) + "}" if piece.text else '{"delta":{}'
                return delta + plain_tail[piece.index]
            content = {"content": piece.text} if piece.text else {}
            logprobs = self._logprobs(piece.tokens) if want_logprobs else None
            return dumps(
                {"delta": content, "logprobs": logprobs, "finish_reason": piece.finish_reason, "index": piece.index}
            )

        first = [
            dumps(
                {"delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None, "index": job.index}
            )
            for job in jobs
        ]
        return EventStreamResponse(stream_events(jobs, placement, frame, make_choice, first, prompt_tokens))


__all__ = ["OpenAIServingChat"]
