"""Streaming: strict SSE framing, chunk consistency, usage placement, and equality with the non-streamed response."""

from __future__ import annotations

from typing import Any

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import stream as checks
from conformance.checks import usage as usage_checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import (
    NONDETERMINISTIC,
    Oracle,
    chunk_overlay,
    folded,
    folded_text,
    stream_chat,
    stream_completion,
)

COMMON = ["stream.content_type", "stream.framing", "stream.done", "stream.consistent_id", "stream.chunk_object",
          "stream.one_finish_reason", "stream.equivalence"]
USAGE = ["usage.stream_final_chunk", "usage.stream_null_elsewhere", "usage.stream_include_usage_chunk",
         "usage.stream_absent_by_default", "usage.stream_matches_non_stream"]


def _run(ctx: Context, chat_endpoint: bool) -> None:
    schema_req = "schema.chat.chunk" if chat_endpoint else "schema.completion.chunk"
    schema_name = "chat.completion.chunk" if chat_endpoint else "completion.chunk"
    body: dict[str, Any] = (
        {"messages": S.CHAT_MESSAGES, "max_tokens": S.MAX_TOKENS} if chat_endpoint
        else {"prompt": S.PROMPT, "max_tokens": S.MAX_TOKENS}
    )
    oracle = Oracle(ctx, chat_endpoint, **body)
    mode = ctx.behaviour("stream.usage")
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if mode == "include_usage" else {}
    call = stream_chat if chat_endpoint else stream_completion
    stream = call(ctx, note="greedy stream", **oracle.body, **extra)
    ctx.verify("stream.content_type", checks.content_type_is_sse, "stream.content_type", stream)
    if stream.status != 200:
        return
    ctx.verify("stream.framing", checks.framing_clean, "stream.framing", stream)
    ctx.verify("stream.done", checks.ends_with_done, "stream.done", stream)
    chunks = stream.chunks
    ctx.verify("stream.consistent_id", checks.consistent_ids, "stream.consistent_id", chunks)
    ctx.verify("stream.chunk_object", checks.chunk_objects, "stream.chunk_object", chunks,
               "chat.completion.chunk" if chat_endpoint else "text_completion")
    ctx.verify("stream.one_finish_reason", checks.one_finish_reason_per_choice, "stream.one_finish_reason", chunks, 1)
    if chat_endpoint:
        ctx.verify("stream.chat_role_first", checks.chat_role_first, "stream.chat_role_first", chunks)
    overlay = chunk_overlay(ctx, extra)
    with ctx.expect(schema_req):
        for i, chunk in enumerate(chunks):
            try:
                common.valid_against(schema_req, schema_name, chunk, overlay)
            except Exception as exc:
                if hasattr(exc, "message"):
                    exc.message = f"chunk {i} of {len(chunks)}: {exc.message}"
                raise
    streamed, streamed_finish = folded_text(stream, chat_endpoint)
    if streamed != oracle.text and not oracle.deterministic():
        ctx.not_applicable("stream.equivalence", NONDETERMINISTIC)
    else:
        ctx.verify("stream.equivalence", checks.same_as_non_stream, "stream.equivalence", streamed, streamed_finish,
                   oracle.text, oracle.finish)
    streamed_usage = None
    if ctx.applies("usage.stream_final_chunk"):
        with ctx.expect("usage.stream_final_chunk"):
            streamed_usage = usage_checks.usage_on_final_chunk("usage.stream_final_chunk", chunks)
        ctx.verify("usage.stream_null_elsewhere", usage_checks.usage_null_elsewhere, "usage.stream_null_elsewhere",
                   chunks)
    if ctx.applies("usage.stream_include_usage_chunk"):
        with ctx.expect("usage.stream_include_usage_chunk"):
            streamed_usage = usage_checks.include_usage_chunk("usage.stream_include_usage_chunk", chunks)
    if ctx.applies("usage.stream_matches_non_stream"):
        ctx.verify("usage.stream_matches_non_stream", usage_checks.usage_equal, "usage.stream_matches_non_stream",
                   streamed_usage if streamed_usage is not None else folded(stream, chat_endpoint).get("usage"),
                   oracle.usage)
    if ctx.applies("usage.stream_absent_by_default"):
        plain = call(ctx, note="stream without stream_options", **oracle.body)
        ctx.verify("usage.stream_absent_by_default", usage_checks.no_usage_in_stream, "usage.stream_absent_by_default",
                   plain.chunks)


@scenario("stream.completions", covers=[*COMMON, *USAGE, "schema.completion.chunk"])
def stream_completions(ctx: Context) -> None:
    """A greedy /completions stream: framing, [DONE], ids, finish_reason, usage placement, equals non-stream."""
    _run(ctx, chat_endpoint=False)


@scenario("stream.chat", covers=[*COMMON, *USAGE, "stream.chat_role_first", "schema.chat.chunk"])
def stream_chat_scenario(ctx: Context) -> None:
    """A greedy /chat/completions stream: the same, plus role first."""
    _run(ctx, chat_endpoint=True)


@scenario("stream.validation_error", covers=["stream.validation_error_not_stream", "errors.envelope"])
def stream_validation_error(ctx: Context) -> None:
    """An invalid streaming request is a 4xx JSON error, not a 200 stream."""
    stream = stream_completion(ctx, note="invalid streaming request (max_tokens is a string)", prompt=S.PROMPT,
                               max_tokens="ten", temperature=0)
    ctx.verify("stream.validation_error_not_stream", checks.error_not_stream, "stream.validation_error_not_stream",
               stream)
    if stream.status != 200:
        with ctx.expect("errors.envelope"):
            from conformance.client import Response

            common.is_openai_error("errors.envelope", Response(stream.status, stream.headers, stream.error_body,
                                                                stream.text, stream.exchange),  # type: ignore[arg-type]
                                   range(400, 500))
    else:
        ctx.not_applicable("errors.envelope", "the invalid streaming request was not rejected")
