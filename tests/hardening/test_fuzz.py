"""Server fuzzing: every response is a 2xx or an OpenAI-shaped 4xx; never a 5xx, never a hang.

Three sources of requests, all sent over real HTTP to a uvicorn serving the session engine:

- the server's own OpenAPI description (schemathesis), positive and negative cases, every operation;
- the project's JSON Schemas (schemas/*.request.json, via hypothesis-jsonschema): valid bodies and
  near-valid ones (one field dropped, retyped or pushed out of range);
- raw garbage: non-JSON, truncated JSON, huge numbers, 10k-deep nesting, wrong content types,
  invalid UTF-8, empty bodies, top-level arrays/strings, NaN/Infinity.

Every test runs against three servers (`target`): the openai profile, the fireworks profile, and
the openai profile with an API key set, whose requests all carry the right key (so the property
holds behind the auth middleware too, and no request is ever refused with a 401).

Budget: `HYPOTHESIS_PROFILE=ci` (the default) runs FUZZ_EXAMPLES (default 20) examples per
operation and mode against the openai server and FUZZ_EXTRA_EXAMPLES (default half of that) against
the two others; `HYPOTHESIS_PROFILE=thorough` (or FUZZ_EXAMPLES=N) runs many more. Generation
is kept cheap by the server's own limits (max_request_tokens=16, max_prompts=4) and by clamping
max_tokens <= 4, n/best_of <= 2 in generated bodies.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import schemas
from reference_server.app import create_app

from .conftest import MODEL, PLANTED_KEY, LiveServer

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300" if THOROUGH else "20"))
EXTRA_EXAMPLES = int(os.environ.get("FUZZ_EXTRA_EXAMPLES", EXAMPLES if THOROUGH else max(5, EXAMPLES // 2)))
REQUEST_TIMEOUT = 30.0  # a hang is a failure, not a stuck CI job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not THOROUGH,
    suppress_health_check=list(HealthCheck),
)


# target id -> (profile, API key the server requires; every request of that target carries it)
TARGETS: dict[str, tuple[str, str | None]] = {
    "openai": ("openai", None),
    "fireworks": ("fireworks", None),
    "openai-keyed": ("openai", PLANTED_KEY),
}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def fuzz_server(make_config: Any, target: str) -> Iterator[LiveServer]:
    profile, key = TARGETS[target]
    cfg = make_config(profile, api_key=key, limits={"max_request_tokens": 16, "max_prompts": 4})
    server = LiveServer(create_app(cfg))
    yield server
    server.close()


class KeyedClient(httpx.Client):
    """An httpx.Client that remembers whether its requests carry the server's key (no 401 allowed)."""

    keyed: bool = False


@pytest.fixture(scope="module")
def http(fuzz_server: LiveServer, target: str) -> Iterator[KeyedClient]:
    key = TARGETS[target][1]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with KeyedClient(base_url=fuzz_server.base_url, timeout=REQUEST_TIMEOUT, headers=headers) as c:
        c.keyed = key is not None
        yield c


def fuzz_settings(target: str) -> settings:
    """The full budget for the openai server; FUZZ_EXTRA_EXAMPLES for the fireworks and keyed ones."""
    return settings(FUZZ_SETTINGS, max_examples=EXAMPLES if target == "openai" else EXTRA_EXAMPLES)


def check_response(resp: httpx.Response, what: str, keyed: bool = False) -> None:
    """The property: 2xx, or a 4xx with the OpenAI error envelope. Never 5xx (and, keyed, never 401)."""
    status = resp.status_code
    assert status < 500, f"{what}: {status} {resp.text[:500]}"
    if keyed:
        assert status != 401, f"{what}: the right key was refused: {resp.text[:300]}"
    if 200 <= status < 300:
        return
    assert 400 <= status < 500, f"{what}: unexpected status {status}"
    assert resp.headers.get("content-type", "").startswith("application/json"), (what, resp.headers)
    body = resp.json()
    assert schemas.validate("error", body) == [], (what, body)


def clamp(body: Any) -> Any:
    """Keep generation cheap: max_tokens <= 4, n <= 2, best_of <= 2 (where they are integers)."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    for key, top in (("max_tokens", 4), ("max_completion_tokens", 4), ("n", 2), ("best_of", 2)):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > top:
            body[key] = top
    return body


def send(http: httpx.Client, method: str, path: str, *, body: Any = None, raw: bytes | None = None,
         headers: dict[str, str] | None = None, query: dict[str, Any] | None = None) -> httpx.Response:
    hdrs = dict(headers or {})
    content: bytes | None = raw
    if raw is None and body is not None:
        content = json.dumps(body).encode("utf-8", "surrogatepass")
        hdrs.setdefault("content-type", "application/json")
    if body is not None and isinstance(body, dict) and body.get("stream") is True:
        with http.stream(method, path, content=content, headers=hdrs, params=query) as r:
            r.read()
            return r
    return http.request(method, path, content=content, headers=hdrs, params=query)


# ---------------------------------------------------------------------------------------------
# 1. From the server's own OpenAPI description (schemathesis)
# ---------------------------------------------------------------------------------------------


def _operations() -> list[str]:
    return ["GET /health", "GET /v1/models", "GET /v1/models/{model}", "POST /v1/completions",
            "POST /v1/chat/completions"]


def test_openapi_lists_every_operation(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    listed = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    assert listed == set(_operations())


# Negative cases need an input that can be invalid: /health and /v1/models take none, and any
# string is a valid {model} path segment.
_SCHEMATHESIS_CASES = [(op, "positive") for op in _operations()] + [
    (op, "negative") for op in _operations() if op.startswith("POST")
]


@pytest.mark.parametrize("operation,mode", _SCHEMATHESIS_CASES)
def test_schemathesis_openapi(http: KeyedClient, target: str, operation: str, mode: str) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    spec = http.get("/openapi.json").json()
    api = schemathesis.openapi.from_dict(spec)
    method, path = operation.split(" ", 1)
    ops = [r.ok() for r in api.get_all_operations()]  # type: ignore[union-attr]
    op = next(o for o in ops if o.method.upper() == method and o.path == path)
    strategy = op.as_strategy(generation_mode=GenerationMode(mode))
    seen: list[int] = []

    @fuzz_settings(target)
    @given(case=strategy, real_model=st.booleans())
    def run(case: Any, real_model: bool) -> None:
        body = case.body
        raw: bytes | None = None
        if isinstance(body, bytes):
            raw, body = body, None
        elif body is not None and not isinstance(body, (dict, list, str, int, float, bool)):
            body = None  # schemathesis' NotSet: no body
        if isinstance(body, dict) and real_model and mode == "positive":
            body = {**body, "model": MODEL}  # reach the generation path, not only model_not_found
        body = clamp(body)
        headers = {k: str(v) for k, v in (case.headers or {}).items()}
        if raw is not None or body is not None:
            headers.setdefault("content-type", case.media_type or "application/json")
        resp = send(http, method, case.formatted_path, body=body, raw=raw, headers=headers, query=case.query)
        seen.append(resp.status_code)
        check_response(resp, f"{target} {operation} {mode} body={str(body)[:300]!r} raw={str(raw)[:100]!r}",
                       keyed=http.keyed)

    run()
    assert seen


# ---------------------------------------------------------------------------------------------
# 2. From the project's JSON Schemas: valid and near-valid bodies
# ---------------------------------------------------------------------------------------------


def _inline(node: Any, doc: dict[str, Any], depth: int = 0) -> Any:
    """The schema with every $ref (local or to another project schema) replaced by its target."""
    if isinstance(node, list):
        return [_inline(x, doc, depth) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        file, _, pointer = ref.partition("#")
        target_doc = schemas.schema(file.removesuffix(".json")) if file else doc
        target: Any = target_doc
        for part in [p for p in pointer.split("/") if p]:
            target = target[part]
        if depth > 6:  # recursive schemas: stop expanding
            return {}
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **rest}, target_doc, depth + 1)
    return {k: _inline(v, doc, depth) for k, v in node.items() if k not in ("$id", "$schema", "$defs")}


def _request_schema(name: str) -> dict[str, Any]:
    doc = schemas.schema(name)
    out = _inline(copy.deepcopy(doc), doc)
    props = out["properties"]
    # Cheap generations: small budgets, the served model.
    props["model"] = {"const": MODEL}  # other model ids: the near-valid mutations
    props["max_tokens"] = {"type": ["integer", "null"], "minimum": 0, "maximum": 4}
    props["n"] = {"type": ["integer", "null"], "minimum": 1, "maximum": 2}
    if "max_completion_tokens" in props:
        props["max_completion_tokens"] = {"type": ["integer", "null"], "minimum": 0, "maximum": 4}
    if "best_of" in props:
        props["best_of"] = {"type": ["integer", "null"], "minimum": 0, "maximum": 2}
    if "messages" in props:
        props["messages"]["maxItems"] = 4
    out["additionalProperties"] = False  # extras are covered by the near-valid mutations
    return out


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def near_valid(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    body = dict(draw(valid))
    keys = sorted(body)
    how = draw(st.sampled_from(["drop", "retype", "extreme", "extra"]))
    if how == "drop" and keys:
        body.pop(draw(st.sampled_from(keys)))
    elif how == "retype" and keys:
        body[draw(st.sampled_from(keys))] = draw(JSON_VALUES)
    elif how == "extreme" and keys:
        body[draw(st.sampled_from(keys))] = draw(st.sampled_from(
            [-1, 0, 2**63, -(2**63) - 1, 2**70, 1e308, -1e308, 5e-324, "", [], {}, [[]], "\u0000" * 3]))
    else:
        body[draw(st.text(min_size=1, max_size=10))] = draw(JSON_VALUES)
    return body


def _schema_strategy(name: str, path: str) -> st.SearchStrategy[Any]:
    """Valid bodies of the project schema `name` (inlined), generated by schemathesis' JSON Schema engine.

    (hypothesis-jsonschema's object generator does not run on current Hypothesis releases.)
    """
    import schemathesis

    doc = {
        "openapi": "3.1.0",
        "info": {"title": name, "version": "1"},
        "paths": {path: {"post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": _request_schema(name)}}},
            "responses": {"200": {"description": "ok"}},
        }}},
    }
    op = next(r.ok() for r in schemathesis.openapi.from_dict(doc).get_all_operations())  # type: ignore[union-attr]
    return op.as_strategy().map(lambda case: case.body)


@pytest.mark.parametrize("kind", ["valid", "near-valid"])
@pytest.mark.parametrize("name,path", [("completion.request", "/v1/completions"),
                                       ("chat.completion.request", "/v1/chat/completions")])
def test_json_schema_bodies(http: KeyedClient, target: str, name: str, path: str, kind: str) -> None:
    valid = _schema_strategy(name, path)
    strategy = valid if kind == "valid" else near_valid(valid)
    statuses: list[int] = []

    @fuzz_settings(target)
    @given(body=strategy)
    def run(body: dict[str, Any]) -> None:
        if kind == "valid":
            assert schemas.validate(name, body) == [], body  # the generator honours the project schema
        resp = send(http, "POST", path, body=clamp(body))
        statuses.append(resp.status_code)
        check_response(resp, f"{target} {name} {kind} {json.dumps(body)[:400]}", keyed=http.keyed)

    run()
    assert statuses


def test_openapi_description_has_no_dangling_refs(http: httpx.Client) -> None:
    """Every `$ref` in /openapi.json resolves inside the document (schema-driven clients need it)."""
    spec = http.get("/openapi.json").json()
    text = json.dumps(spec)
    import re

    for ref in set(re.findall(r'"\$ref": "([^"]*)"', text)):
        assert ref.startswith("#/"), ref
        node: Any = spec
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
            node = node[part]


# ---------------------------------------------------------------------------------------------
# 3. Raw garbage
# ---------------------------------------------------------------------------------------------

_OK = b'{"model":"tiny","prompt":"The fox","max_tokens":2'
GARBAGE: dict[str, tuple[bytes, str | None]] = {
    "empty": (b"", "application/json"),
    "whitespace": (b" \n\t ", "application/json"),
    "not-json": (b"hello world", "application/json"),
    "truncated": (_OK, "application/json"),
    "truncated-string": (b'{"model":"tiny","prompt":"The f', "application/json"),
    "top-level-array": (b"[1,2,3]", "application/json"),
    "top-level-string": (b'"just a string"', "application/json"),
    "top-level-null": (b"null", "application/json"),
    "top-level-number": (b"1e400", "application/json"),
    "huge-float": (_OK + b',"temperature":1e400}', "application/json"),
    "huge-int-max-tokens": (_OK.replace(b"2", str(2**70).encode()) + b"}", "application/json"),
    "huge-int-n": (_OK + b',"n":' + str(2**70).encode() + b"}", "application/json"),
    "huge-int-seed": (_OK + b',"seed":' + str(2**70).encode() + b"}", "application/json"),
    "huge-int-top-k": (_OK + b',"top_k":' + str(2**70).encode() + b"}", "application/json"),
    "huge-token-id": (b'{"model":"tiny","prompt":[' + str(2**70).encode() + b'],"max_tokens":2}', "application/json"),
    "negative-token-id": (b'{"model":"tiny","prompt":[-1],"max_tokens":2}', "application/json"),
    "thousand-digit-int": (_OK + b',"seed":' + b"9" * 1000 + b"}", "application/json"),
    "nan": (_OK + b',"temperature":NaN}', "application/json"),
    "infinity": (_OK + b',"top_p":Infinity}', "application/json"),
    "minus-infinity": (_OK + b',"frequency_penalty":-Infinity}', "application/json"),
    "denormal-temperature": (_OK + b',"temperature":1e-320}', "application/json"),
    "tiny-temperature": (_OK + b',"temperature":1e-38}', "application/json"),
    "deep-array-10k": (b"[" * 10_000 + b"]" * 10_000, "application/json"),
    "deep-object-10k": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json"),
    "deep-prompt-10k": (b'{"model":"tiny","prompt":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "application/json"),
    "deep-stop": (b'{"model":"tiny","prompt":"a","stop":' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json"),
    "invalid-utf8": (b'{"model":"tiny","prompt":"\xff\xfe\xfd","max_tokens":2}', "application/json"),
    "overlong-utf8": (b'{"model":"tiny","prompt":"\xc0\xaf","max_tokens":2}', "application/json"),
    "lone-surrogate-escape": (b'{"model":"tiny","prompt":"\\ud800","max_tokens":2}', "application/json"),
    "lone-surrogate-model": (b'{"model":"\\udfff","prompt":"a","max_tokens":2}', "application/json"),
    "nul-in-prompt": (b'{"model":"tiny","prompt":"a\\u0000b","max_tokens":2}', "application/json"),
    "utf16-body": ('{"model":"tiny","prompt":"a","max_tokens":2}'.encode("utf-16"), "application/json"),
    "bom": (b"\xef\xbb\xbf" + _OK + b"}", "application/json"),
    "duplicate-keys": (b'{"model":"tiny","model":"x","prompt":"a","max_tokens":2}', "application/json"),
    "trailing-garbage": (_OK + b"}}}", "application/json"),
    "two-objects": (_OK + b"}" + _OK + b"}", "application/json"),
    "no-content-type": (_OK + b"}", None),
    "text-plain": (_OK + b"}", "text/plain"),
    "form": (b"model=tiny&prompt=a", "application/x-www-form-urlencoded"),
    "multipart": (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
    "garbage-content-type": (_OK + b"}", "\x01\x02;;;=="),
    "json-with-charset-latin1": (_OK + b"}", "application/json; charset=latin-1"),
    "binary": (bytes(range(256)) * 4, "application/octet-stream"),
    "binary-as-json": (bytes(range(256)) * 4, "application/json"),
    "many-keys": (b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(20_000)) + b"}", "application/json"),
    "long-string": (b'{"model":"' + b"m" * 500_000 + b'","prompt":"a","max_tokens":2}', "application/json"),
}


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_raw_garbage(http: KeyedClient, path: str, case: str) -> None:
    raw, content_type = GARBAGE[case]
    headers = {} if content_type is None else {"content-type": content_type}
    check_response(http.post(path, content=raw, headers=headers), f"{case} -> {path}", keyed=http.keyed)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/models/tiny",
                                  "/v1/nope", "/v1/models/%ff%fe", "/v1/models/" + "a" * 5000, "/%00"])
def test_methods_and_paths(http: KeyedClient, method: str, path: str) -> None:
    resp = http.request(method, path)
    assert resp.status_code < 500, (method, path, resp.status_code, resp.text[:300])
    if resp.status_code >= 400 and method != "HEAD":
        check_response(resp, f"{method} {path}", keyed=http.keyed)


def test_chunked_body_over_the_limit_is_413_without_reading_it_all(make_config: Any) -> None:
    """A chunked upload (no Content-Length) past max_body_bytes: 413, OpenAI-shaped."""
    server = LiveServer(create_app(make_config("openai", limits={"max_body_bytes": 4096})))
    try:
        def chunks() -> Iterator[bytes]:
            yield b'{"model":"tiny","prompt":"'
            for _ in range(64):
                yield b"a" * 1024
            yield b'"}'

        with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as c:
            resp = c.post("/v1/completions", content=chunks(), headers={"content-type": "application/json"})
            err = resp.json()["error"]
            assert resp.status_code == 413 and err["code"] == "request_too_large", resp.text
            check_response(resp, "chunked")
    finally:
        server.close()
