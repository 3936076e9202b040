"""Scenarios, one module per area; importing this package registers them all in scenario.REGISTRY."""

from conformance.scenarios import (  # noqa: F401
    auth,
    determinism,
    echo,
    errors,
    logprobs,
    max_tokens,
    models,
    n,
    params,
    schema,
    sdk,
    stop,
    stream,
    usage,
)
