"""Check functions: small, pure, typed. Each raises CheckFailure(requirement, message, observed=..., expected=...)
when the endpoint does not meet the requirement it is called for, and returns normally otherwise.

Modules are per area (`checks.stop`, `checks.usage`, ...); `checks.common` holds the shape and error-envelope
checks every area uses. Messages say concretely what was expected and what was observed.
"""

from conformance.checks import (
    common,
    determinism,
    echo,
    logprobs,
    max_tokens,
    models,
    n,
    params,
    stop,
    stream,
    usage,
)

__all__ = [
    "common", "determinism", "echo", "logprobs", "max_tokens", "models", "n", "params", "stop", "stream", "usage",
]
