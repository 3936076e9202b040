"""Which real clients this environment can run, and a strict gate over a run's sdk.* results.

`conformance run` treats a client that is not installed as SKIP (an endpoint is not to blame for the machine
running the suite). Where the clients are meant to be there (`tox -e sdk-legacy,sdk`, CI, the project's own
tests), a skip is a silent hole; this gate turns it, and any sdk.* failure (SHOULD included), into exit 1:

    python -m conformance.sdk_clients.gate reports/sdk/results.json

A client counts as available:
  - sdk.python.*    the openai>=1 package imports;
  - sdk.langchain.* langchain-openai imports (and openai>=1);
  - sdk.legacy.*    $CONFORMANCE_LEGACY_PYTHON names an existing interpreter;
  - sdk.node.*      node is on PATH, and npm too unless openai@<major> is already in the cache.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conformance.sdk_clients import LEGACY_ENV, LEGACY_HINT, NODE_OPENAI_MAJOR, _installed_version, node_dir

# requirement id prefix -> the client it drives
CLIENTS = {
    "sdk.python.": "openai-python",
    "sdk.langchain.": "langchain-openai",
    "sdk.legacy.": "openai-python-legacy",
    "sdk.node.": "openai-node",
}
PASSING = frozenset({"pass", "not_applicable"})


def _openai_v1() -> str | None:
    try:
        module = importlib.import_module("openai")
    except ImportError:
        return "the openai Python package is not installed"
    if not hasattr(module, "OpenAI"):
        return f"openai {getattr(module, '__version__', '?')} is the legacy SDK (openai>=1 needed)"
    return None


def unavailable() -> dict[str, str | None]:
    """client name -> why it cannot run here (None: it is available, so its requirements must not skip)."""
    out: dict[str, str | None] = {}
    out["openai-python"] = _openai_v1()
    if importlib.util.find_spec("langchain_openai") is None:
        out["langchain-openai"] = "langchain-openai is not installed"
    else:
        out["langchain-openai"] = out["openai-python"]
    legacy = os.environ.get(LEGACY_ENV, "").strip()
    if not legacy:
        out["openai-python-legacy"] = f"{LEGACY_ENV} is not set: {LEGACY_HINT}"
    elif not (Path(legacy).is_file() or shutil.which(legacy)):
        out["openai-python-legacy"] = f"{LEGACY_ENV}={legacy!r} is not an executable"
    else:
        out["openai-python-legacy"] = None
    cached = (_installed_version(node_dir()) or "").split(".")[0] == str(NODE_OPENAI_MAJOR)
    if shutil.which("node") is None:
        out["openai-node"] = "node not found on PATH"
    elif shutil.which("npm") is None and not cached:
        out["openai-node"] = "npm not found on PATH"
    else:
        out["openai-node"] = None
    return out


def client_of(requirement: str) -> str | None:
    return next((client for prefix, client in CLIENTS.items() if requirement.startswith(prefix)), None)


def problems(requirements: Sequence[Mapping[str, Any]], why_not: Mapping[str, str | None]) -> list[str]:
    """One line per sdk.* requirement that fails, or skips although its client is available.

    `requirements` are results.json's requirement entries ({"id", "status", "message"}); `why_not` is
    `unavailable()`."""
    out = []
    for r in requirements:
        rid, status = str(r.get("id", "")), str(getattr(r.get("status"), "value", r.get("status")))
        if not rid.startswith("sdk."):
            continue
        client = client_of(rid)
        message = " ".join(str(r.get("message") or "").split())[:300]
        if status == "skip":
            reason = why_not.get(client) if client else "no client is known for this requirement"
            if reason is None:
                out.append(f"{rid}: skip although {client} is available here: {message}")
        elif status not in PASSING:
            out.append(f"{rid}: {status}: {message}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.sdk_clients.gate", description=__doc__.split("\n")[0])
    parser.add_argument("results", help="results.json of a run (or the report directory holding it)")
    args = parser.parse_args(argv)
    from reports.io import ReportFileError, load_report  # the report reader lives with the renderers

    try:
        report = load_report(args.results)
    except ReportFileError as exc:
        print(f"sdk gate: {exc}", file=sys.stderr)
        return 2
    entries = [{"id": r.id, "status": r.status.value, "message": r.message} for r in report.requirements]
    if not any(e["id"].startswith("sdk.") for e in entries):
        print(f"sdk gate: {args.results} has no sdk.* requirement", file=sys.stderr)
        return 1
    why_not = unavailable()
    for client, reason in why_not.items():
        print(f"sdk gate: {client}: " + ("available" if reason is None else f"unavailable ({reason}): may skip"))
    found = problems(entries, why_not)
    for line in found:
        print(f"sdk gate: {line}", file=sys.stderr)
    checked = sum(1 for e in entries if e["id"].startswith("sdk."))
    print(f"sdk gate: {checked} sdk.* requirement(s), {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
