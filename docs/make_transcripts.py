"""Record docs/transcripts.md: each documented fireworks/openai difference, on the wire, from the reference server.

    python docs/make_transcripts.py            # starts the reference server in each profile, writes docs/transcripts.md
    python docs/make_transcripts.py --out -    # print instead

The requests are sent with httpx to the real server (tiny model, greedy), and the responses are
written as received: pretty JSON for plain responses, the raw SSE lines for streams. Only the
volatile parts are replaced, so that the file stays diff-friendly: response ids become `cmpl-0001`,
`chatcmpl-0002`, ... (the same id gets the same placeholder) and `created` becomes 1767225600.
The curl commands show the server on port 8000 (fireworks) and 8001 (openai).

While recording, the script checks that each response shows the difference it documents and
stops with an error if not, so the transcript can never silently contradict the profiles.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python docs/make_transcripts.py` from a checkout
    sys.path.insert(0, str(ROOT))

PROFILES = ("fireworks", "openai")
SHOWN_PORT = {"fireworks": 8000, "openai": 8001}
MODEL = "tiny"
PROMPT = "The quick brown fox"
CREATED = 1767225600
ID_RE = re.compile(r"\b((?:chat)?cmpl)-[0-9A-Za-z]{8,}\b")
CREATED_RE = re.compile(r'"created":(\s*)\d+')


class TranscriptError(RuntimeError):
    """The server did not show the documented behaviour."""


@dataclass
class Exchange:
    profile: str
    path: str
    body: dict[str, Any]
    status: int
    text: str  # the response body as received (raw SSE for streams)
    stream: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    def events(self) -> list[Any]:
        """The JSON payload of each `data:` line of a stream, [DONE] excluded."""
        out = []
        for line in self.text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[len("data: "):]))
        return out


@dataclass
class Recorder:
    """Sends requests to one server per profile and renders them as Markdown."""

    clients: dict[str, httpx.Client]
    ids: dict[str, str] = field(default_factory=dict)

    def send(self, profile: str, path: str, body: dict[str, Any]) -> Exchange:
        client = self.clients[profile]
        if body.get("stream"):
            with client.stream("POST", path, json=body) as response:
                text = response.read().decode("utf-8")
                return Exchange(profile, path, body, response.status_code, text, stream=True)
        response = client.post(path, json=body)
        return Exchange(profile, path, body, response.status_code, response.text)

    # -- rendering ----------------------------------------------------------------------------

    def stable(self, text: str) -> str:
        def placeholder(match: re.Match[str]) -> str:
            raw = match.group(0)
            if raw not in self.ids:
                self.ids[raw] = f"{match.group(1)}-{len(self.ids) + 1:04d}"
            return self.ids[raw]

        return CREATED_RE.sub(lambda m: f'"created":{m.group(1)}{CREATED}', ID_RE.sub(placeholder, text))

    def curl(self, exchange: Exchange) -> str:
        payload = json.dumps(exchange.body, indent=2, ensure_ascii=False).replace("'", "'\\''")
        flags = "-sN" if exchange.stream else "-s"
        url = f"http://127.0.0.1:{SHOWN_PORT[exchange.profile]}/v1{exchange.path}"
        return (f"```bash\n# {exchange.profile} server\ncurl {flags} {url} \\\n"
                f"  -H 'Content-Type: application/json' \\\n  -d '{payload}'\n```")

    def response(self, exchange: Exchange) -> str:
        if exchange.stream and exchange.status == 200:
            return f"HTTP {exchange.status}, `text/event-stream`:\n\n```text\n{self.stable(exchange.text).rstrip()}\n```"
        pretty = json.dumps(exchange.json, indent=2, ensure_ascii=False)
        return f"HTTP {exchange.status}:\n\n```json\n{self.stable(pretty)}\n```"

    def block(self, exchange: Exchange, intro: str = "") -> str:
        parts = [intro] if intro else []
        parts += [self.curl(exchange), self.response(exchange)]
        return "\n\n".join(parts)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise TranscriptError(message)


def _text(exchange: Exchange) -> str:
    expect(exchange.status == 200, f"{exchange.profile}: expected HTTP 200, got {exchange.status}: {exchange.text[:300]}")
    return str(exchange.json["choices"][0]["text"])


def _error(exchange: Exchange, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    expect(exchange.status == 400, f"{exchange.profile}: expected HTTP 400, got {exchange.status}: "
                                   f"{exchange.text[:300]}")
    error = exchange.json["error"]
    expect(error.get("type") == "invalid_request_error", f"error type {error.get('type')!r}")
    if code is not None:
        expect(error.get("code") == code, f"error code {error.get('code')!r}, expected {code!r}")
    if param is not None:
        expect(error.get("param") == param, f"error param {error.get('param')!r}, expected {param!r}")
    return dict(error)


# -- the sections -------------------------------------------------------------------------------


def section_stop(rec: Recorder) -> str:
    base = {"model": MODEL, "prompt": PROMPT, "max_tokens": 24, "temperature": 0}
    plain = rec.send("fireworks", "/completions", base)
    unstopped = _text(plain)
    words = [w for w in re.findall(r" [A-Za-z]{3,}", unstopped) if unstopped.count(w) == 1]
    expect(len(words) >= 2, f"no usable stop word in {unstopped!r}")
    expect(_text(rec.send("openai", "/completions", base)) == unstopped, "the profiles differ without a stop")
    stop = words[len(words) // 2]  # a word from the middle of the greedy output
    cut = unstopped.index(stop)
    fireworks = rec.send("fireworks", "/completions", {**base, "stop": [stop]})
    openai = rec.send("openai", "/completions", {**base, "stop": [stop]})
    expect(_text(fireworks) == unstopped[:cut + len(stop)], f"fireworks did not keep the stop: {_text(fireworks)!r}")
    expect(_text(openai) == unstopped[:cut], f"openai did not drop the stop: {_text(openai)!r}")
    for ex in (fireworks, openai):
        expect(ex.json["choices"][0]["finish_reason"] == "stop", f"{ex.profile}: finish_reason is not stop")
    return "\n\n".join([
        "## (a) Stop sequences: included (fireworks) or omitted (openai)",
        "Requirements `stop.included` (fireworks) and `stop.excluded` (openai). The same greedy request "
        f"first without a stop, then with the stop sequence `{stop!r}` taken from that output.",
        rec.block(plain, "Without `stop` (identical in both profiles):"),
        rec.block(fireworks, f"**fireworks**: the text ends *with* the stop sequence `{stop!r}`; "
                             "finish_reason `stop`:"),
        rec.block(openai, f"**openai**: the same request; the text ends just *before* `{stop!r}`:"),
    ])


def _prompt_tokens(rec: Recorder, prompt: str) -> int:
    ex = rec.send("fireworks", "/completions", {"model": MODEL, "prompt": prompt, "max_tokens": 1, "temperature": 0})
    expect(ex.status == 200, f"cannot measure a prompt: {ex.text[:300]}")
    return int(ex.json["usage"]["prompt_tokens"])


def _clamped(rec: Recorder, context: int) -> tuple[Exchange, dict[str, Any], int]:
    """The longest repeated-sentence prompt under the context whose clamped greedy generation runs to the
    limit (finish_reason length, not an early end of text), and its fireworks exchange."""
    sentence = "The quick brown fox jumps over the lazy dog. "
    count = max(1, context // max(1, _prompt_tokens(rec, sentence)))
    while count > 1 and _prompt_tokens(rec, (sentence * count).rstrip()) >= context:
        count -= 1
    for n in range(count, max(0, count - 6), -1):
        prompt = (sentence * n).rstrip()
        body = {"model": MODEL, "prompt": prompt, "max_tokens": 64, "temperature": 0}
        clamped = rec.send("fireworks", "/completions", body)
        _text(clamped)
        if clamped.json["choices"][0]["finish_reason"] == "length":
            return clamped, body, int(clamped.json["usage"]["prompt_tokens"])
    raise TranscriptError("no prompt near the context length whose clamped generation hits the limit")


def section_overflow(rec: Recorder, context: int) -> str:
    clamped, body, prompt_tokens = _clamped(rec, context)
    usage = clamped.json["usage"]
    expect(usage["prompt_tokens"] + usage["completion_tokens"] == context,
           f"fireworks: prompt + completion tokens {usage} != context {context}")
    rejected = rec.send("openai", "/completions", body)
    _error(rejected, code="context_length_exceeded")
    strict = rec.send("fireworks", "/completions", {**body, "context_length_exceeded_behavior": "error"})
    _error(strict, code="context_length_exceeded")
    return "\n\n".join([
        "## (b) `max_tokens` beyond the context window: clamped (fireworks) or rejected (openai)",
        f"Requirements `max_tokens.overflow_clamped`, `max_tokens.clamp_arithmetic`, `max_tokens.cleb_error` "
        f"(fireworks) and `max_tokens.overflow_rejected` (openai). The tiny model's context window is "
        f"{context} tokens (`GET /v1/models` reports it as `context_length`); the prompt below is "
        f"{prompt_tokens} tokens, and `max_tokens` is 64.",
        rec.block(clamped, f"**fireworks** (default `context_length_exceeded_behavior: truncate`): `max_tokens` is "
                           f"clamped to {context} − {usage['prompt_tokens']} = {usage['completion_tokens']}; "
                           f"`prompt_tokens + completion_tokens` = {usage['prompt_tokens']} + "
                           f"{usage['completion_tokens']} = {context}, the context window, and finish_reason "
                           "is `length`:"),
        rec.block(rejected, "**openai**: the same request is an `invalid_request_error` with code "
                            "`context_length_exceeded`:"),
        rec.block(strict, "**fireworks** with `context_length_exceeded_behavior: \"error\"`: the same error "
                          "as openai:"),
    ])


def section_stream_usage(rec: Recorder) -> str:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 5, "temperature": 0, "stream": True}
    fireworks = rec.send("fireworks", "/completions", body)
    events = fireworks.events()
    expect(fireworks.status == 200 and len(events) >= 2, f"fireworks stream: {fireworks.text[:300]}")
    expect(all(e.get("usage") is None for e in events[:-1]), "fireworks: usage before the final chunk")
    expect(events[-1].get("usage") is not None and events[-1]["choices"][0]["finish_reason"] is not None,
           "fireworks: no usage on the final chunk")
    plain = rec.send("openai", "/completions", body)
    expect(plain.status == 200 and all("usage" not in e or e["usage"] is None for e in plain.events()),
           "openai: usage without include_usage")
    included = rec.send("openai", "/completions", {**body, "stream_options": {"include_usage": True}})
    events = included.events()
    expect(included.status == 200 and events[-1]["choices"] == [] and events[-1].get("usage") is not None,
           "openai: no extra usage chunk with empty choices")
    expect(fireworks.text.rstrip().endswith("data: [DONE]") and included.text.rstrip().endswith("data: [DONE]"),
           "a stream does not end with data: [DONE]")
    return "\n\n".join([
        "## (c) Streaming usage: on the final chunk (fireworks) or an extra chunk on request (openai)",
        "Requirements `usage.stream_final_chunk`, `usage.stream_null_elsewhere` (fireworks) and "
        "`usage.stream_include_usage_chunk`, `usage.stream_absent_by_default` (openai). Raw SSE lines as sent.",
        rec.block(fireworks, "**fireworks**: `usage` is `null` on every chunk but the final one, which carries "
                             "the finish_reason *and* the usage; no `stream_options` needed:"),
        rec.block(plain, "**openai** without `stream_options`: no usage at all:"),
        rec.block(included, "**openai** with `stream_options: {\"include_usage\": true}`: one extra chunk before "
                            "`[DONE]`, with empty `choices` and the usage:"),
    ])


def section_unsupported(rec: Recorder) -> str:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
    rejected = rec.send("fireworks", "/completions", {**body, "presence_penalty": 0.5})
    _error(rejected, param="presence_penalty")
    default = rec.send("fireworks", "/completions", {**body, "presence_penalty": 0})
    _text(default)
    openai = rec.send("openai", "/completions", {**body, "presence_penalty": 0.5})
    _text(openai)
    return "\n\n".join([
        "## (d) Unsupported options: rejected by name (fireworks), implemented (openai)",
        "Requirements `params.presence_penalty.rejected` (fireworks) and `params.presence_penalty.supported` "
        "(openai); `frequency_penalty`, `best_of`, `logit_bias` and `functions` behave the same way.",
        rec.block(rejected, "**fireworks**, `presence_penalty: 0.5`: a 400 `invalid_request_error` whose `param` "
                            "names the option:"),
        rec.block(default, "**fireworks**, `presence_penalty: 0` (the default value, which common clients send): "
                           "accepted:"),
        rec.block(openai, "**openai**, `presence_penalty: 0.5`: accepted, and applied as a logits processor over "
                          "the tokens generated so far" + (
                              " (no token of this short greedy text would repeat an earlier one, so the text is "
                              "the same as without the penalty):" if _text(openai) == _text(default) else
                              " (the greedy text differs from the one without the penalty above):")),
    ])


def record(base_urls: dict[str, str], api_key: str | None = None) -> str:
    """The whole transcript, as Markdown, from servers already running ({profile: base_url})."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with ExitStack() as stack:
        clients = {p: stack.enter_context(httpx.Client(base_url=base_urls[p], headers=headers, timeout=300,
                                                       trust_env=False)) for p in PROFILES}
        rec = Recorder(clients)
        models = clients["fireworks"].get("/models").json()["data"]
        context = next(int(m["context_length"]) for m in models if m["id"] == MODEL)
        sections = [section_stop(rec), section_overflow(rec, context), section_stream_usage(rec),
                    section_unsupported(rec)]
    head = "\n\n".join([
        "# Transcripts: the documented differences on the wire",
        "<!-- Generated by `python docs/make_transcripts.py`; do not edit by hand. -->",
        "Each documented difference between the `fireworks` and `openai` profiles, recorded from the "
        "reference server (built-in tiny model, greedy decoding) started as:",
        "```bash\nreference-server --profile fireworks --port 8000\nreference-server --profile openai --port 8001\n```",
        f"Response ids are replaced by stable placeholders (`cmpl-0001`, ...) and `created` by {CREATED}; "
        "everything else is exactly what the server sent. The suite's requirement ids are named in each "
        "section (`conformance docs` has their statements and sources).",
    ])
    return head + "\n\n" + "\n\n".join(sections) + "\n"


def _start_servers(stack: ExitStack, log: Callable[[str], None]) -> dict[str, str]:
    from conformance.embedded import EmbeddedServer

    urls = {}
    for profile in PROFILES:
        log(f"starting the reference server, profile {profile} ...")
        urls[profile] = stack.enter_context(EmbeddedServer(profile))
    return urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "transcripts.md"), help="output file, or - for stdout")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        with ExitStack() as stack:
            text = record(_start_servers(stack, log))
    except TranscriptError as exc:
        log(f"make_transcripts: the server does not behave as documented: {exc}")
        return 1
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
