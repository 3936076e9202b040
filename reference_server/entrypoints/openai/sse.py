"""Server-sent events framing and a streaming response that cancels generation on disconnect."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import APIError, engine_error, logger

DONE = "data: [DONE]\n\n"


def sse_data(payload: dict[str, Any]) -> str:
    """One SSE event: a single `data:` line holding compact JSON (never split over lines)."""
    return "data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n\n"


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
        async with anyio.create_task_group() as tg:

            async def run_and_cancel(func: Any) -> None:
                with contextlib.suppress(OSError):  # the client went away while we were sending
                    await func()
                tg.cancel_scope.cancel()

            tg.start_soon(run_and_cancel, partial(self.stream_response, send))
            await run_and_cancel(partial(self.listen_for_disconnect, receive))
        if self.background is not None:
            await self.background()
