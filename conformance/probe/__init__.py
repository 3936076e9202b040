"""`conformance probe`: infer an unknown endpoint's behaviour profile from typically 19-22 cheap
requests (at most 23 by design; MAX_REQUESTS, 25 with GET /models, is the hard cap; infer.py lists them).

    from conformance.probe import ProbeConfig, probe_endpoint, to_yaml
    result = probe_endpoint(ProbeConfig(base_url="http://127.0.0.1:8000/v1"))
    print(to_yaml(result))            # a profile file, evidence as YAML comments

- `axes.py`: one inference function per behaviour axis (and per observation: [DONE], determinism,
  defaults accepted).
- `infer.py`: the session (shared baselines, request budget) and orchestration (`run_probe`,
  `probe_endpoint`).
- `render.py`: YAML, closest built-in profile, terminal table, a run's `observed` section.
"""

from conformance.probe.evidence import Inference
from conformance.probe.infer import MAX_REQUESTS, ProbeConfig, ProbeResult, probe_endpoint, run_probe
from conformance.probe.render import (
    closest_profile,
    error_observed,
    print_table,
    to_observed,
    to_profile_data,
    to_yaml,
)

__all__ = [
    "MAX_REQUESTS", "Inference", "ProbeConfig", "ProbeResult", "closest_profile", "error_observed",
    "print_table", "probe_endpoint", "run_probe", "to_observed", "to_profile_data", "to_yaml",
]
