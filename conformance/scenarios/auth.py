"""Authentication: missing, wrong and malformed keys are refused with 401 and an OpenAI error.

Whether the endpoint is meant to require a key is read from the run itself: when the user supplied
one (--api-key, $CONFORMANCE_API_KEY or $OPENAI_API_KEY; the CLI's embedded server always gets one),
an endpoint that serves a keyless, wrong-key or non-Bearer request FAILS the auth requirements, with
that request and its 2xx response as evidence. Without a key, an endpoint that serves a keyless
request is taken to be an open one: the auth requirements are not applicable.
"""

from __future__ import annotations

from typing import Any

from conformance import strategies as S
from conformance.checks import common
from conformance.checks.common import clip
from conformance.results import CheckFailure, NotApplicable
from conformance.scenario import Context, scenario

WRONG_KEY = "sk-conformance-wrong-key-0000000000"
NO_KEY_REASON = ("the endpoint accepts requests without any API key: authentication is not enforced, and no API key "
                 "was given for this run (pass --api-key or set CONFORMANCE_API_KEY to require it)")


def _served(response: Any) -> bool:
    return response.status is not None and 200 <= response.status < 300


def refused(requirement: str, response: Any, what: str) -> None:
    """`response` (to a request `what`) is a 401 OpenAI error; a 2xx is named for what it is."""
    if _served(response):
        raise CheckFailure(
            requirement,
            f"the endpoint served a request {what} with HTTP {response.status} although this run was given an "
            f"API key: authentication is not enforced (expected HTTP 401 with an OpenAI error); body "
            f"{clip(response.json if response.json is not None else response.text)}",
            observed=response.status, expected=401,
        )
    common.is_openai_error(requirement, response, 401)


@scenario("auth.keys", covers=["auth.missing_key", "auth.wrong_key", "auth.malformed_header", "auth.error_shape"])
def auth_keys(ctx: Context) -> None:
    """Requests without a key, with a wrong key and with a non-Bearer header are refused."""
    body = {"model": ctx.target.model, "prompt": S.PROMPT, "max_tokens": 1, "temperature": 0}
    missing = ctx.client.post("/completions", body, auth=False, note="no Authorization header")
    if _served(missing) and not ctx.target.api_key:
        raise NotApplicable(NO_KEY_REASON)
    ctx.verify("auth.missing_key", refused, "auth.missing_key", missing, "without an Authorization header")
    wrong = ctx.client.post("/completions", body, auth=False, headers={"Authorization": f"Bearer {WRONG_KEY}"},
                            note="wrong bearer key")
    ctx.verify("auth.wrong_key", refused, "auth.wrong_key", wrong, "with a wrong bearer key")
    malformed = ctx.client.post("/completions", body, auth=False, headers={"Authorization": f"Token {WRONG_KEY}"},
                                note="Authorization header without Bearer")
    ctx.verify("auth.malformed_header", refused, "auth.malformed_header", malformed,
               "with an Authorization header that is not \"Bearer <key>\"")
    responses = (missing, wrong, malformed)
    if not any(r.status in (401, 403) for r in responses) and all(_served(r) for r in responses):
        ctx.not_applicable("auth.error_shape", "the endpoint refused none of the keyless, wrong-key and non-Bearer "
                                               "requests: there is no authentication error to inspect (see "
                                               "auth.missing_key)")
        return
    with ctx.expect("auth.error_shape"):
        for response in responses:
            if response.status in (401, 403):
                common.is_openai_error("auth.error_shape", response, (401, 403))
            if WRONG_KEY in (response.text or ""):
                raise CheckFailure("auth.error_shape", "the error body echoes the API key it received",
                                   observed=response.text, expected="no key in the body")
