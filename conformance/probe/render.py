"""Probe output: the profile YAML (evidence as comments), the closest built-in profile, the terminal
table, and the JSON-serialisable `observed` section of a run's results.json."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from conformance import __version__
from conformance.probe.evidence import Inference, one_line
from conformance.probe.infer import ProbeResult
from conformance.profiles import AXES, Profile, builtin_profiles, load_profile


@dataclass
class Comparison:
    profile: str
    differs: list[str]  # axes whose inferred value differs from the profile's


def compare(result: ProbeResult, profile: Profile) -> list[str]:
    return [axis for axis in AXES if result.behaviour.get(axis) != profile.behaviour.get(axis)]


def closest_profile(result: ProbeResult) -> Comparison:
    """The built-in profile with the fewest differing axes (ties: alphabetical)."""
    ranked = sorted((len(compare(result, load_profile(name))), name) for name in builtin_profiles())
    name = ranked[0][1]
    return Comparison(name, compare(result, load_profile(name)))


def closest_line(result: ProbeResult) -> str:
    best = closest_profile(result)
    differs = f"differs on: {', '.join(best.differs)}" if best.differs else "identical on every axis"
    return f"closest known profile: {best.profile} ({differs})"


def profile_id(base_url: str) -> str:
    parts = urlsplit(base_url)
    host = parts.hostname or "endpoint"
    if parts.port:
        host += f"-{parts.port}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", host).strip("-.") or "endpoint"
    return f"probed-{slug}"


def _comment(text: str, indent: str = "") -> str:
    return f"{indent}# {' '.join(str(text).split())}"


def _scalar(value: str) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def to_yaml(result: ProbeResult) -> str:
    """A profile file in the built-ins' format (loadable with load_profile), evidence as comments."""
    best = closest_profile(result)
    lines = [
        _comment(f"Behaviour profile inferred by `conformance probe` (openai-conformance {__version__})."),
        _comment(f"Endpoint {result.base_url}, model {result.model}, chat model {result.chat_model}, "
                 f"context length {result.context_length if result.context_length is not None else 'unknown'}."),
        _comment(f"{result.requests} requests, {result.prompt_tokens} prompt + {result.completion_tokens} "
                 "completion tokens."),
        _comment(closest_line(result) + "."),
    ]
    if result.error:
        lines.append(_comment(f"PROBE STOPPED EARLY: {result.error}"))
    if result.unknown_axes:
        lines.append(_comment(f"NOT INFERRED (OpenAI value written, check by hand): {', '.join(result.unknown_axes)}"))
    lines.append("# Observed, not profile axes:")
    for obs in result.observations.values():
        lines.append(_comment(f"  {obs.name}: {obs.line()}"))
    lines += [
        f"id: {_scalar(profile_id(result.base_url))}",
        f"title: {_scalar(f'Probed: {result.base_url} (closest: {best.profile})')}",
        f"source: {_scalar(f'probed {result.base_url} on {result.date}')}",
        "behaviour:",
    ]
    for axis, inference in result.axes.items():
        marker = "" if inference.inferred else f"NOT INFERRED ({inference.status}): OpenAI value. "
        lines.append(_comment(f"{marker}{inference.value} — {inference.reason}", "  "))
        if inference.caveat:
            lines.append(_comment(f"caveat: {inference.caveat}", "  "))
        for line in inference.evidence():
            lines.append(_comment(f"  {line}", "  "))
        lines.append(f"  {axis}: {inference.value}")
    lines += ["# Per-requirement overrides: {id: {status: not_applicable, reason: \"...\"}}", "requirements: {}"]
    return "\n".join(lines) + "\n"


def to_profile_data(result: ProbeResult) -> dict[str, Any]:
    parsed = yaml.safe_load(to_yaml(result))
    assert isinstance(parsed, dict)
    return parsed


def to_observed(result: ProbeResult, run_profile: Profile | None = None) -> dict[str, Any]:
    """RunReport.observed: `axis -> "value — reason"` strings (rendered as a table by reports/html.py),
    then `probe`: a summary with the evidence lines per axis."""
    observed: dict[str, Any] = {}
    for axis, inference in result.axes.items():
        text = inference.line()
        if run_profile is not None and run_profile.behaviour.get(axis) != inference.value:
            text = f"≠ profile {run_profile.id} ({run_profile.behaviour.get(axis)}): {text}"
        observed[axis] = text
    for name, inference in result.observations.items():
        observed[name] = inference.line()
    best = closest_profile(result)
    summary: dict[str, Any] = {
        "requests": result.requests,
        "closest_profile": best.profile,
        "differs_from_closest": best.differs,
        "not_inferred": result.unknown_axes,
    }
    if run_profile is not None:
        summary["differs_from_run_profile"] = compare(result, run_profile)
    if result.error:
        summary["error"] = result.error
    summary["evidence"] = {name: inf.evidence() for name, inf in {**result.axes, **result.observations}.items()}
    observed["probe"] = summary
    return observed


def error_observed(message: str) -> dict[str, Any]:
    return {"probe": {"error": one_line(message, 400)}}


def print_table(result: ProbeResult, console: Any) -> None:
    """Axis -> value -> evidence line, then the observations and the closest profile."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"probed {result.base_url} (model {result.model}), {result.requests} requests"))
    table.add_column("axis", overflow="fold", max_width=44)
    table.add_column("inferred", overflow="fold")
    table.add_column("evidence", overflow="fold", min_width=30)

    best = closest_profile(result)
    reference = load_profile(best.profile).behaviour

    def row(inference: Inference) -> None:
        value = escape(inference.value) if inference.inferred else \
            f"[bold yellow]{escape(inference.value)}[/] [yellow]({inference.status})[/]"
        if inference.name in best.differs:
            value = f"[bold]{value}[/] [red](≠ {escape(best.profile)}: {escape(reference[inference.name])})[/]"
        reason = inference.reason + (f"; {inference.caveat}" if inference.caveat else "")
        table.add_row(escape(inference.name), value, escape(reason))

    for inference in result.axes.values():
        row(inference)
    table.add_section()
    for inference in result.observations.values():
        row(inference)
    console.print(table)
    if result.error:
        console.print(f"[bold red]probe stopped early:[/] {escape(result.error)}")
    if result.unknown_axes:
        console.print(f"[bold yellow]NOT INFERRED[/] (the OpenAI value is written; check these by hand): "
                      f"{escape(', '.join(result.unknown_axes))}")
    console.print(escape(closest_line(result)))
