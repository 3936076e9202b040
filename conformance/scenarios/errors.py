"""Malformed requests get OpenAI-shaped 4xx errors, and the endpoint keeps serving."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks import common
from conformance.scenario import Context, scenario
from conformance.scenarios._support import chat, completion


@scenario("errors.bad_requests", covers=["errors.malformed_json", "errors.missing_field", "errors.wrong_type",
                                         "errors.envelope", "errors.server_survives", "schema.error"])
def errors_bad_requests(ctx: Context) -> None:
    """Invalid JSON, a missing field, a wrongly typed field: 400 with the error envelope; then a valid request works."""
    malformed = ctx.client.post("/completions", None, raw=b'{"model": "m", "prompt": "x", ',
                                headers={"Content-Type": "application/json"}, note="body is not valid JSON")
    ctx.verify("errors.malformed_json", common.is_openai_error, "errors.malformed_json", malformed, 400)
    missing = chat(ctx, note="chat without messages", max_tokens=4, temperature=0)
    ctx.verify("errors.missing_field", common.is_openai_error, "errors.missing_field", missing, 400,
               error_type="invalid_request_error")
    wrong = completion(ctx, note="max_tokens as a string", prompt=S.PROMPT, max_tokens="ten", temperature=0)
    ctx.verify("errors.wrong_type", common.is_openai_error, "errors.wrong_type", wrong, 400,
               error_type="invalid_request_error")
    for response in (malformed, missing, wrong):
        if response.status >= 400:
            ctx.verify("errors.envelope", common.is_openai_error, "errors.envelope", response, range(400, 600))
            ctx.verify("schema.error", common.valid_against, "schema.error", "error", response.json)
    after = completion(ctx, note="a valid request after the rejected ones", cache=False, prompt=S.PROMPT,
                       max_tokens=4, temperature=0)
    ctx.verify("errors.server_survives", common.status_ok, "errors.server_survives", after)


@scenario("errors.unknown_model", covers=["errors.unknown_model"])
def errors_unknown_model(ctx: Context) -> None:
    """A model the endpoint does not serve is refused with 404 (or 400)."""
    response = completion(ctx, note="unknown model", model="conformance-no-such-model", prompt=S.PROMPT,
                          max_tokens=4, temperature=0)
    ctx.verify("errors.unknown_model", common.is_openai_error, "errors.unknown_model", response, (404, 400))


@scenario("errors.unknown_route", covers=["errors.unknown_route"])
def errors_unknown_route(ctx: Context) -> None:
    """An unknown path gets 404 with an OpenAI error."""
    response = ctx.client.get("/conformance-no-such-route", note="unknown route")
    ctx.verify("errors.unknown_route", common.is_openai_error, "errors.unknown_route", response, 404)
