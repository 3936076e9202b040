"""Hypothesis settings for scenarios that generate requests against a live endpoint.

Every example costs real requests, so the "ci" profile is small, reproducible (derandomize:
the same run makes the same requests) and skips shrinking (each shrink step is more requests);
"thorough" explores more. The example count itself always comes from `ctx.max_examples`
(--max-examples)::

    from conformance.hypothesis_profiles import endpoint_settings

    @endpoint_settings(ctx)          # settings(parent=profile, max_examples=ctx.max_examples)
    @given(...)
    def prop(...): ...

Select with CONFORMANCE_HYPOTHESIS_PROFILE=thorough (default "ci").
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings

CI = "conformance-ci"
THOROUGH = "conformance-thorough"
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]

_ci = settings(
    max_examples=5,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=_SUPPRESS,
    print_blob=False,
    report_multiple_bugs=False,
)
_thorough = settings(
    max_examples=50,
    derandomize=False,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=_SUPPRESS,
    report_multiple_bugs=False,
)

settings.register_profile(CI, _ci)
settings.register_profile(THOROUGH, _thorough)
# Short aliases as the brief names them; the repository's own tests/conftest.py registers
# its own "ci"/"thorough" for the project's property tests, so only fill these in if absent.
for _alias, _parent in (("ci", _ci), ("thorough", _thorough)):
    try:
        settings.get_profile(_alias)
    except Exception:
        settings.register_profile(_alias, _parent)

PROFILES = {"ci": _ci, "thorough": _thorough}


def profile_settings(name: str | None = None) -> settings:
    """The parent settings for endpoint properties: "ci" unless CONFORMANCE_HYPOTHESIS_PROFILE says otherwise."""
    name = name or os.environ.get("CONFORMANCE_HYPOTHESIS_PROFILE", "ci")
    return PROFILES.get(name, _ci)


def endpoint_settings(ctx: Any = None, *, max_examples: int | None = None, **overrides: Any) -> settings:
    """Settings for one property run against the endpoint: the profile + ctx.max_examples."""
    count = max_examples if max_examples is not None else getattr(ctx, "max_examples", None)
    if count is not None:
        overrides["max_examples"] = max(1, int(count))
    return settings(profile_settings(), **overrides)
