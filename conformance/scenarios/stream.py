"""Streaming: strict SSE framing, chunk consistency, usage placement, and equality with the non-streamed response.

The stream scenarios are Hypothesis properties: each example draws a prompt and a small max_tokens, makes the
greedy request streamed and non-streamed, and compares the folded stream with the non-streamed response (text,
finish_reason, usage and where the usage is placed, per profile). An endpoint that is not deterministic at
temperature 0 gets NOT_APPLICABLE (NONDETERMINISTIC) for the comparisons instead of false failures.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance import strategies as S
from conformance.checks import common
from conformance.checks import stream as checks
from conformance.checks import usage as usage_checks
from conformance.scenario import Context, scenario
from conformance.scenarios._support import (
    NONDETERMINISTIC,
    DeterminismMemo,
    Oracle,
    chunk_overlay,
    folded,
    folded_text,
    stream_chat,
    stream_completion,
    verify_drawn,
)

COMMON = ["stream.content_type", "stream.framing", "stream.done", "stream.consistent_id", "stream.chunk_object",
          "stream.one_finish_reason", "stream.equivalence"]
USAGE = ["usage.stream_final_chunk", "usage.stream_null_elsewhere", "usage.stream_include_usage_chunk",
         "usage.stream_absent_by_default", "usage.stream_matches_non_stream"]
MAX_TOKENS_DRAWN = 16  # max_tokens of the drawn greedy requests: 1..this


def check_stream(ctx: Context, chat_endpoint: bool, body: dict[str, Any], memo: DeterminismMemo,
                 drawn: dict[str, Any]) -> None:
    """One greedy request, streamed and not: every stream check, and the comparison of the two."""
    schema_req = "schema.chat.chunk" if chat_endpoint else "schema.completion.chunk"
    schema_name = "chat.completion.chunk" if chat_endpoint else "completion.chunk"
    oracle = Oracle(ctx, chat_endpoint, **body)
    mode = ctx.behaviour("stream.usage")
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if mode == "include_usage" else {}
    call = stream_chat if chat_endpoint else stream_completion
    stream = call(ctx, note="greedy stream", **oracle.body, **extra)
    verify_drawn(ctx, drawn, "stream.content_type", checks.content_type_is_sse, "stream.content_type", stream)
    if stream.status != 200:
        return
    verify_drawn(ctx, drawn, "stream.framing", checks.framing_clean, "stream.framing", stream)
    verify_drawn(ctx, drawn, "stream.done", checks.ends_with_done, "stream.done", stream)
    chunks = stream.chunks
    verify_drawn(ctx, drawn, "stream.consistent_id", checks.consistent_ids, "stream.consistent_id", chunks)
    verify_drawn(ctx, drawn, "stream.chunk_object", checks.chunk_objects, "stream.chunk_object", chunks,
                 "chat.completion.chunk" if chat_endpoint else "text_completion")
    verify_drawn(ctx, drawn, "stream.one_finish_reason", checks.one_finish_reason_per_choice,
                 "stream.one_finish_reason", chunks, 1)
    if chat_endpoint:
        verify_drawn(ctx, drawn, "stream.chat_role_first", checks.chat_role_first, "stream.chat_role_first", chunks)
    overlay = chunk_overlay(ctx, extra)

    def schema_valid(req: str) -> None:
        for i, chunk in enumerate(chunks):
            try:
                common.valid_against(req, schema_name, chunk, overlay)
            except Exception as exc:
                if hasattr(exc, "message"):
                    exc.message = f"chunk {i} of {len(chunks)}: {exc.message}"
                raise

    verify_drawn(ctx, drawn, schema_req, schema_valid, schema_req)
    streamed, streamed_finish = folded_text(stream, chat_endpoint)
    differs = memo.explains(oracle, streamed == oracle.text)
    if differs:
        ctx.not_applicable("stream.equivalence", NONDETERMINISTIC)
    else:
        verify_drawn(ctx, drawn, "stream.equivalence", checks.same_as_non_stream, "stream.equivalence", streamed,
                     streamed_finish, oracle.text, oracle.finish)
    placed: dict[str, Any] = {}

    def usage_placed(req: str, check: Any) -> None:
        placed["usage"] = check(req, chunks)

    if ctx.applies("usage.stream_final_chunk"):
        verify_drawn(ctx, drawn, "usage.stream_final_chunk", usage_placed, "usage.stream_final_chunk",
                     usage_checks.usage_on_final_chunk)
        verify_drawn(ctx, drawn, "usage.stream_null_elsewhere", usage_checks.usage_null_elsewhere,
                     "usage.stream_null_elsewhere", chunks)
    if ctx.applies("usage.stream_include_usage_chunk"):
        verify_drawn(ctx, drawn, "usage.stream_include_usage_chunk", usage_placed,
                     "usage.stream_include_usage_chunk", usage_checks.include_usage_chunk)
    streamed_usage = placed.get("usage")
    if ctx.applies("usage.stream_matches_non_stream"):
        if differs:  # a different generation may well have a different length
            ctx.not_applicable("usage.stream_matches_non_stream", NONDETERMINISTIC)
        else:
            verify_drawn(ctx, drawn, "usage.stream_matches_non_stream", usage_checks.usage_equal,
                         "usage.stream_matches_non_stream",
                         streamed_usage if streamed_usage is not None else folded(stream, chat_endpoint).get("usage"),
                         oracle.usage)
    if ctx.applies("usage.stream_absent_by_default"):
        plain = call(ctx, note="stream without stream_options", **oracle.body)
        verify_drawn(ctx, drawn, "usage.stream_absent_by_default", usage_checks.no_usage_in_stream,
                     "usage.stream_absent_by_default", plain.chunks)


def _run(ctx: Context, chat_endpoint: bool) -> None:
    memo = DeterminismMemo()

    def example(data: st.DataObject) -> None:
        inputs = data.draw(S.request_inputs(chat_endpoint), label="inputs")
        max_tokens = data.draw(S.small_max_tokens(MAX_TOKENS_DRAWN), label="max_tokens")
        body = {**inputs, "max_tokens": max_tokens}
        check_stream(ctx, chat_endpoint, body, memo,
                     {"endpoint": "chat" if chat_endpoint else "completions", **body})

    S.run_examples(ctx, example)


@scenario("stream.completions", covers=[*COMMON, *USAGE, "schema.completion.chunk"])
def stream_completions(ctx: Context) -> None:
    """Greedy /completions streams (drawn prompt, max_tokens): framing, ids, usage placement, equal to non-stream."""
    _run(ctx, chat_endpoint=False)


@scenario("stream.chat", covers=[*COMMON, *USAGE, "stream.chat_role_first", "schema.chat.chunk"])
def stream_chat_scenario(ctx: Context) -> None:
    """Greedy /chat/completions streams (drawn messages, max_tokens): the same, plus role first."""
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
