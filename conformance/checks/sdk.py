"""Checks for real clients (openai-python, openai-node, the legacy openai<1 SDK, langchain-openai).

The scenarios in conformance/scenarios/sdk.py drive the clients; these functions only judge what a
client gave back (its parsed objects, its exceptions, or a JSON summary printed by a client script).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.checks.common import clip
from conformance.results import CheckFailure

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def sdk_type_accepts(req: str, what: str, errors: Sequence[str], payload: Any) -> None:
    """The client's own type definition accepts the payload (no required field missing or mistyped).

    `errors` are the validation errors the client's model reported for what it parsed: the openai SDKs parse
    leniently, so a missing `choices[].index` or `object` only shows up when the application reads it."""
    if errors:
        raise CheckFailure(
            req, f"{what} does not match the client's own type: {'; '.join(errors[:5])}"
            + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            observed=payload, expected=f"a {what} the client's type accepts", errors=list(errors[:20]),
        )


def nonempty_text(req: str, what: str, text: Any) -> None:
    """A greedy request with max_tokens > 0 produced text the client exposes as a (non-empty) string."""
    if not isinstance(text, str):
        raise CheckFailure(req, f"{what} is {clip(text)} ({type(text).__name__}); expected a string",
                           observed=text, expected="a string")
    if not text:
        raise CheckFailure(req, f"{what} is empty", observed=text, expected="generated text")


def finish_reason_in(req: str, what: str, reason: Any, allowed: Sequence[str] = ("stop", "length")) -> None:
    if reason not in allowed:
        raise CheckFailure(req, f"{what} finish_reason is {reason!r}; expected one of {list(allowed)}",
                           observed=reason, expected=list(allowed))


def equals(req: str, what: str, observed: Any, expected: Any) -> None:
    if observed != expected:
        raise CheckFailure(req, f"{what} is {clip(observed)}; expected {clip(expected)}",
                           observed=observed, expected=expected)


def choice_indexes(req: str, indexes: Sequence[Any], n: int) -> None:
    """n=N gives exactly N choices indexed 0..N-1."""
    if sorted(i for i in indexes if isinstance(i, int)) != list(range(n)) or len(indexes) != n:
        raise CheckFailure(req, f"n={n} gave choices with indexes {list(indexes)}; expected {list(range(n))}",
                           observed=list(indexes), expected=list(range(n)))


def usage_counts(req: str, where: str, usage: Any) -> dict[str, int]:
    """usage has non-negative integer counts and total = prompt + completion. Returns it as a dict."""
    if not isinstance(usage, Mapping):
        raise CheckFailure(req, f"{where}: usage is {clip(usage)}; expected an object with {', '.join(USAGE_KEYS)}",
                           observed=usage, expected="usage object")
    bad = {k: usage.get(k) for k in USAGE_KEYS if not _is_count(usage.get(k))}
    if bad:
        raise CheckFailure(req, f"{where}: usage fields are not non-negative integers: {bad}",
                           observed=dict(usage), expected="non-negative integers")
    p, c, t = (usage[k] for k in USAGE_KEYS)
    if t != p + c:
        raise CheckFailure(req, f"{where}: total_tokens {t} != prompt_tokens {p} + completion_tokens {c}",
                           observed=dict(usage), expected=p + c)
    return {k: usage[k] for k in USAGE_KEYS}


def stream_usage(req: str, chunks: Sequence[Mapping[str, Any]], mode: str) -> dict[str, int]:
    """The streamed usage, read by the client from the chunk the profile says carries it.

    `chunks` summarise what the client saw, in order: {"finish": bool (a choice has finish_reason),
    "choices": int, "usage": the value the client read (None when absent)}. `mode` is the profile's
    stream.usage axis: final_chunk (seed: 'the usage field is returned in the very last chunk on the response
    (i.e. the one having finish_reason set)') or include_usage (OpenAI: an extra last chunk with empty choices).
    """
    if not chunks:
        raise CheckFailure(req, "the client received no chunks", observed=[], expected="a stream of chunks")
    last = chunks[-1]
    with_usage = [i for i, c in enumerate(chunks) if c.get("usage") is not None]
    if mode == "final_chunk":
        if not last.get("finish"):
            raise CheckFailure(req, f"the last of {len(chunks)} chunks has no finish_reason: {clip(dict(last))}",
                               observed=dict(last), expected="last chunk with finish_reason and usage")
    elif mode == "include_usage" and last.get("choices") not in (0, None):
        raise CheckFailure(req, f"with stream_options.include_usage the last chunk has {last.get('choices')} "
                           "choice(s); expected an extra final chunk with empty choices carrying usage",
                           observed=dict(last), expected="choices == [] and usage")
    if last.get("usage") is None:
        raise CheckFailure(
            req, f"the client read no usage on the last of {len(chunks)} chunks"
            + (f"; usage appeared on chunk(s) {with_usage}" if with_usage else "; no chunk carried usage"),
            observed=[dict(c) for c in chunks[-3:]], expected="usage on the final chunk")
    early = [i for i in with_usage if i != len(chunks) - 1]
    if early:
        raise CheckFailure(req, f"usage appeared before the final chunk (chunk(s) {early} of {len(chunks)})",
                           observed=early, expected="usage only on the final chunk")
    return usage_counts(req, "final chunk", last["usage"])


def typed_error(req: str, exc: BaseException | None, expected: str, status: int, server_message: Any) -> None:
    """The client raised its typed exception (e.g. openai.AuthenticationError) carrying the server's message.

    `exc` is what the client raised (None when the call succeeded); `server_message` is error.message of the
    HTTP response body as the server sent it (None when the body is not an OpenAI error)."""
    if exc is None:
        raise CheckFailure(req, f"the request succeeded; expected the client to raise {expected} (HTTP {status})",
                           observed="no exception", expected=expected)
    name = type(exc).__name__
    names = [cls.__name__ for cls in type(exc).__mro__]
    got_status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    if expected not in names:
        raise CheckFailure(req, f"the client raised {name} (HTTP {got_status}): {clip(str(exc))}; expected {expected} "
                           f"(HTTP {status})", observed=name, expected=expected, status=got_status)
    if not isinstance(server_message, str) or not server_message:
        raise CheckFailure(req, f"{name} raised, but the server's error body has no error.message for the client to "
                           f"carry: {clip(str(exc))}", observed=getattr(exc, "body", None),
                           expected='{"error": {"message": ...}}')
    body = getattr(exc, "body", None)
    carried = getattr(exc, "message", None) or str(exc)
    body_message = body.get("message") if isinstance(body, Mapping) else None
    if server_message not in str(carried) or (body is not None and body_message != server_message):
        raise CheckFailure(req, f"{name} does not carry the server's message {server_message!r}: message "
                           f"{clip(str(carried))}, body {clip(body)}", observed=str(carried), expected=server_message)
