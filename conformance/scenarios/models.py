"""GET /models and /models/{id}."""

from __future__ import annotations

from conformance.checks import common
from conformance.checks import models as checks
from conformance.scenario import Context, scenario


@scenario("models.endpoints", covers=["models.list_shape", "models.retrieve", "models.unknown_404",
                                      "models.context_length"])
def models_endpoints(ctx: Context) -> None:
    """The list names the model under test; retrieving it works; an unknown id is 404; the context is stated."""
    listing = ctx.client.get("/models", note="list models")
    with ctx.expect("models.list_shape"):
        common.status_ok("models.list_shape", listing)
        common.valid_against("models.list_shape", "model.list", listing.json)
        checks.lists_model("models.list_shape", listing.json, ctx.target.model)
    entry = next((m for m in (listing.json or {}).get("data") or [] if isinstance(m, dict)
                  and m.get("id") == ctx.target.model), None) if isinstance(listing.json, dict) else None
    ctx.verify("models.context_length", checks.context_length_reported, "models.context_length", entry)
    one = ctx.client.get(f"/models/{ctx.target.model}", note="retrieve the model")
    with ctx.expect("models.retrieve"):
        common.status_ok("models.retrieve", one)
        common.valid_against("models.retrieve", "model", one.json)
        checks.model_object("models.retrieve", one.json, ctx.target.model)
    unknown = ctx.client.get("/models/conformance-no-such-model", note="retrieve an unknown model")
    ctx.verify("models.unknown_404", common.is_openai_error, "models.unknown_404", unknown, 404)
