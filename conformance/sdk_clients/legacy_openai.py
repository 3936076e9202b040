"""The seed's own code samples, run with the legacy `openai<1` Python SDK ("verbatim in spirit").

Runs in an isolated interpreter with openai<1 installed (`tox -e sdk-legacy`; the suite finds it through
$CONFORMANCE_LEGACY_PYTHON) and imports nothing from this project. Input, from the environment only (the
key is never on the command line): CONFORMANCE_SDK_BASE_URL, CONFORMANCE_SDK_API_KEY, CONFORMANCE_SDK_MODEL,
CONFORMANCE_SDK_CHAT_MODEL, CONFORMANCE_SDK_TIMEOUT (seconds), CONFORMANCE_SDK_STREAM_USAGE (final_chunk |
include_usage | none). Output: one JSON object on stdout::

    {"client": "openai-python-legacy", "version": "0.28.1",
     "results": {"completions": R, "chat": R, "per_request": R, "stream_usage": S}}
    R = {"response": {...} | null, "error": "ExceptionType: message" | null}
    S = {"chunks": [{"finish": bool, "choices": int, "usage": ..., "usage_key": bool}], "text": str,
         "error": str | null}

or {"skip": "reason"} when this interpreter has no openai<1.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

UNREACHABLE_BASE = "http://127.0.0.1:9/v1"  # the discard port: a process-wide setting that must not be used
WRONG_KEY = "sk-conformance-legacy-wrong-key"


def _plain(value: Any) -> Any:
    to_dict = getattr(value, "to_dict_recursive", None)
    if callable(to_dict):
        return to_dict()
    return json.loads(json.dumps(value, default=str))


def _error(exc: BaseException) -> str:
    message = getattr(exc, "user_message", None) or str(exc)
    status = getattr(exc, "http_status", None)
    return f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}: {message}"


def main() -> int:
    try:
        openai: Any = importlib.import_module("openai")
    except ImportError:
        print(json.dumps({"skip": f"openai is not installed in {sys.executable}"}))
        return 0
    version = str(getattr(openai, "__version__", None) or getattr(getattr(openai, "version", None), "VERSION", "?"))
    if not hasattr(openai, "ChatCompletion") or version.split(".")[0] not in ("0",):
        print(json.dumps({"skip": f"{sys.executable} has openai {version}, not openai<1"}))
        return 0

    env = os.environ
    base = env["CONFORMANCE_SDK_BASE_URL"]
    key = env.get("CONFORMANCE_SDK_API_KEY") or "no-key-given"
    model = env["CONFORMANCE_SDK_MODEL"]
    chat_model = env.get("CONFORMANCE_SDK_CHAT_MODEL") or model
    timeout = float(env.get("CONFORMANCE_SDK_TIMEOUT") or "60")
    stream_usage = env.get("CONFORMANCE_SDK_STREAM_USAGE", "final_chunk")
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say this is a test"},
    ]
    results: dict[str, Any] = {}

    # "or by setting these values in Python ... warning: it has a process-wide effect"
    openai.api_base = base
    openai.api_key = key

    # "Simple completion API that doesn't modify provided prompt in any way"
    try:
        completion = openai.Completion.create(model=model, prompt="The quick brown fox", max_tokens=16,
                                              temperature=0, request_timeout=timeout)
        results["completions"] = {"response": _plain(completion), "error": None}
    except Exception as exc:
        results["completions"] = {"response": None, "error": _error(exc)}

    # "Chat Completion"
    try:
        chat_completion = openai.ChatCompletion.create(model=chat_model, messages=messages, max_tokens=16,
                                                       temperature=0, request_timeout=timeout)
        results["chat"] = {"response": _plain(chat_completion), "error": None}
    except Exception as exc:
        results["chat"] = {"response": None, "error": _error(exc)}

    # "Alternatively, you may specify these parameters for a single request ... api_base and api_key can be
    # passed to any of the supported APIs": the process-wide values now point elsewhere and must not be used.
    openai.api_base = UNREACHABLE_BASE
    openai.api_key = WRONG_KEY
    try:
        chat_completion = openai.ChatCompletion.create(api_base=base, api_key=key, model=chat_model,
                                                       messages=messages, max_tokens=16, temperature=0,
                                                       request_timeout=timeout)
        results["per_request"] = {"response": _plain(chat_completion), "error": None}
    except Exception as exc:
        results["per_request"] = {"response": None, "error": _error(exc)}
    openai.api_base = base
    openai.api_key = key

    # "for chunk in openai.ChatCompletion.create(...): print(chunk["usage"])"
    extra: dict[str, Any] = {}
    if stream_usage == "include_usage":
        extra["stream_options"] = {"include_usage": True}
    stream: dict[str, Any] = {"chunks": [], "text": "", "error": None}
    try:
        for chunk in openai.ChatCompletion.create(model=chat_model, messages=messages, max_tokens=16,
                                                  temperature=0, stream=True, request_timeout=timeout, **extra):
            choices = chunk.get("choices") or []
            try:
                usage, has_key = chunk["usage"], True
            except KeyError:
                usage, has_key = None, False
            stream["chunks"].append({
                "finish": any(c.get("finish_reason") is not None for c in choices),
                "choices": len(choices),
                "usage": _plain(usage) if usage is not None else None,
                "usage_key": has_key,
            })
            for c in choices:
                stream["text"] += (c.get("delta") or {}).get("content") or ""
    except Exception as exc:
        stream["error"] = _error(exc)
    results["stream_usage"] = stream

    print(json.dumps({"client": "openai-python-legacy", "version": version, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
