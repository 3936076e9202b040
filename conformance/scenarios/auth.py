"""Authentication: missing, wrong and malformed keys are refused with 401 and an OpenAI error."""

from __future__ import annotations

from conformance import strategies as S
from conformance.checks import common
from conformance.results import CheckFailure, NotApplicable
from conformance.scenario import Context, scenario

WRONG_KEY = "sk-conformance-wrong-key-0000000000"


@scenario("auth.keys", covers=["auth.missing_key", "auth.wrong_key", "auth.malformed_header", "auth.error_shape"])
def auth_keys(ctx: Context) -> None:
    """Requests without a key, with a wrong key and with a non-Bearer header are refused."""
    body = {"model": ctx.target.model, "prompt": S.PROMPT, "max_tokens": 1, "temperature": 0}
    missing = ctx.client.post("/completions", body, auth=False, note="no Authorization header")
    if missing.status == 200:
        raise NotApplicable("the endpoint accepts requests without any API key: authentication is not enforced")
    ctx.verify("auth.missing_key", common.is_openai_error, "auth.missing_key", missing, 401)
    wrong = ctx.client.post("/completions", body, auth=False, headers={"Authorization": f"Bearer {WRONG_KEY}"},
                            note="wrong bearer key")
    ctx.verify("auth.wrong_key", common.is_openai_error, "auth.wrong_key", wrong, 401)
    malformed = ctx.client.post("/completions", body, auth=False, headers={"Authorization": f"Token {WRONG_KEY}"},
                                note="Authorization header without Bearer")
    ctx.verify("auth.malformed_header", common.is_openai_error, "auth.malformed_header", malformed, 401)
    with ctx.expect("auth.error_shape"):
        for response in (missing, wrong, malformed):
            if response.status in (401, 403):
                common.is_openai_error("auth.error_shape", response, (401, 403))
            if WRONG_KEY in (response.text or ""):
                raise CheckFailure("auth.error_shape", "the error body echoes the API key it received",
                                   observed=response.text, expected="no key in the body")
