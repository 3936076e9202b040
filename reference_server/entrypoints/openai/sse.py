"""Server-sent events framing and a streaming response that cancels generation on disconnect."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from functools import partial
from json.encoder import encode_basestring
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import APIError, engine_error, logger

DONE = "data: [DONE]\n\n"

# `dumps(x)` is `json.dumps(x, ensure_ascii=False, separators=(",", ":"))` without building an
# encoder per call; `dumps_str` is the same for a str (a JSON string literal, quotes included).
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
dumps_str = encode_basestring


def sse_data(payload: dict[str, Any]) -> str:
    """One SSE event: a single `data:` line holding compact JSON (never split over lines)."""
    return "data: " + dumps(payload) + "\n\n"


class ChunkFrame:
    """The SSE events of one stream, with the fields every chunk shares serialized once.

    `template` is a chunk as the endpoint would send it with no choices (keys in order, `usage`
    as `UsagePlacement.field` leaves it): `event(choices)` is `sse_data` of that chunk with
    `choices` holding the already-serialized choice objects, byte for byte, at the cost of a few
    string concatenations. Only `usage` may vary between the events of a stream (`usage=`).
    """

    def __init__(self, template: dict[str, Any]) -> None:
        keys = list(template)
        at = keys.index("choices")
        self._template = template
        self._after = keys[at + 1 :]
        before = "".join(dumps_str(k) + ":" + dumps(template[k]) + "," for k in keys[:at])
        self.head = "data: {" + before + '"choices":['
        self.tail = self._tail(template)

    def _tail(self, values: dict[str, Any]) -> str:
        return "]" + "".join("," + dumps_str(k) + ":" + dumps(values[k]) for k in self._after) + "}\n\n"

    def event(self, choices: list[str], usage: dict[str, Any] | None = None) -> str:
        """The event for a chunk with these serialized choices (and this `usage`, where the chunk has one)."""
        tail = self.tail
        if usage is not None and "usage" in self._template:
            tail = self._tail({**self._template, "usage": usage})
        return self.head + ",".join(choices) + tail


def stream_error_event(exc: BaseException) -> str:
    if not isinstance(exc, APIError):
        logger.error("error after the stream started: %r", exc)
    return sse_data(engine_error(exc).body())


class EventStreamResponse(StreamingResponse):
    """text/event-stream whose body generator is cancelled as soon as the client disconnects.

    Starlette only notices a disconnect on the next failed send for ASGI spec >= 2.4; here a
    listener task watches `receive` whatever the server's spec version, so closing the connection
    closes the engine iterators at once (freeing their batch slots).
    """

    def __init__(self, content: AsyncIterator[str], headers: dict[str, str] | None = None) -> None:
        base = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type="text/event-stream", headers={**base, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def run_and_cancel(func: Any) -> None:
                    with contextlib.suppress(OSError):  # the client went away while we were sending
                        await func()
                    tg.cancel_scope.cancel()

                tg.start_soon(run_and_cancel, partial(self.stream_response, send))
                await run_and_cancel(partial(self.listen_for_disconnect, receive))
        finally:
            # Cancelled while sending, the body generator is left suspended at a `yield`: close it
            # now (its `finally` closes the engine iterators), not whenever it is garbage-collected.
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.background is not None:
            await self.background()
