"""pytest plugin (registered through the `pytest11` entry point): one test item per requirement.

    pytest --base-url http://127.0.0.1:8000/v1 --profile openai [--api-key KEY] [--model NAME]
    pytest --conformance                  # against the embedded reference server ($CONFORMANCE_BASE_URL wins)

Inactive unless --base-url or --conformance is given, so ordinary test runs are untouched.
The suite runs once per session (on the first item), only for the requirements still selected
after -k/-m deselection; each item then reports its requirement's status: pass, fail (fail,
error, timeout, with the message and the redacted evidence) or skip (skip, not_applicable).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.results import RequirementResult, RunReport, Status

_STATE_KEY = "_conformance_state"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "OpenAI-compatible API conformance")

    def add(*names: str, **kwargs: Any) -> None:
        with contextlib.suppress(ValueError):  # another plugin (pytest-base-url) may own the name
            group.addoption(*names, **kwargs)

    add("--conformance", action="store_true", default=False,
        help="run the conformance suite (against --base-url, $CONFORMANCE_BASE_URL or the embedded server)")
    add("--base-url", action="store", default=None, help="API base URL, e.g. http://127.0.0.1:8000/v1")
    add("--api-key", action="store", default=None, help="API key (default: $CONFORMANCE_API_KEY / $OPENAI_API_KEY)")
    add("--profile", action="store", default="fireworks", help="behaviour profile: fireworks, openai or a file")
    add("--model", action="store", default=None, help="model name (default: first listed by /models)")
    add("--chat-model", action="store", default=None, help="chat model name (default: --model)")
    add("--context-length", action="store", type=int, default=None, help="context window in tokens")
    add("--conformance-max-examples", action="store", type=int, default=None, help="examples per property test")
    add("--conformance-timeout", action="store", type=float, default=60.0, help="seconds per request")
    add("--conformance-concurrency", action="store", type=int, default=4, help="scenarios in parallel")
    add("--conformance-report-dir", action="store", default=None, help="also write results.json etc. here")


def _opt(config: pytest.Config, name: str, default: Any = None) -> Any:
    try:
        return config.getoption(name)
    except ValueError:
        return default


def _active(config: pytest.Config) -> bool:
    return bool(_opt(config, "--conformance") or _opt(config, "--base-url"))


class _State:
    def __init__(self) -> None:
        self.report: RunReport | None = None
        self.results: dict[str, RequirementResult] = {}
        self.error: str | None = None
        self.ran = False


class ConformanceCollector(pytest.Collector):
    def collect(self) -> list[pytest.Item]:
        from conformance.catalogue import load_catalogue

        return [RequirementItem.from_parent(self, name=rid) for rid in load_catalogue()]


class RequirementFailed(Exception):
    def __init__(self, result: RequirementResult) -> None:
        super().__init__(result.message)
        self.result = result


class RequirementItem(pytest.Item):
    def runtest(self) -> None:
        state = _ensure_run(self.session)
        if state.error is not None:
            pytest.fail(state.error, pytrace=False)
        result = state.results.get(self.name)
        if result is None:
            pytest.fail(f"{self.name}: not in the run's results", pytrace=False)
        if result.status == Status.PASS:
            return
        if result.status in (Status.SKIP, Status.NOT_APPLICABLE):
            raise pytest.skip.Exception(f"{result.status.value}: {result.message}", _use_item_location=True)
        raise RequirementFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, RequirementFailed):
            r = excinfo.value.result
            lines = [f"[{r.level.value}] {r.id}: {r.status.value}", f"statement: {r.statement}",
                     f"observed: {r.message}", f"tests: {', '.join(r.tests)}"]
            for evidence in r.evidence[:3]:
                lines.append(f"--- evidence from {evidence.test}: {evidence.message}")
                if evidence.details:
                    lines.append("details: " + json.dumps(evidence.details, default=str)[:2000])
                for exchange in evidence.exchanges[-3:]:
                    lines.append(f"> {exchange.request.method} {exchange.request.url}"
                                 + (f"  ({exchange.note})" if exchange.note else ""))
                    if exchange.request.body is not None:
                        lines.append("> " + json.dumps(exchange.request.body, default=str)[:1000])
                    if exchange.response is not None:
                        lines.append(f"< {exchange.response.status}")
                        if exchange.response.body is not None:
                            lines.append("< " + json.dumps(exchange.response.body, default=str)[:1500])
                        if exchange.response.events:
                            lines.append(f"< {len(exchange.response.events)} events, last: "
                                         + exchange.response.events[-1][:500])
                    if exchange.error:
                        lines.append(f"! {exchange.error}")
            return "\n".join(lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path | str, int | None, str]:
        return "conformance", 0, f"requirement {self.name}"


def _ensure_run(session: pytest.Session) -> _State:
    state: _State = getattr(session.config, _STATE_KEY)
    if state.ran:
        return state
    state.ran = True
    from conformance.runner import RunConfig, Unreachable, run_suite

    config = session.config
    ids = [item.name for item in session.items if isinstance(item, RequirementItem)]
    api_key = _opt(config, "--api-key") or os.environ.get("CONFORMANCE_API_KEY") or os.environ.get("OPENAI_API_KEY")
    run_config = RunConfig(
        base_url=_opt(config, "--base-url") or "", api_key=api_key, model=_opt(config, "--model"),
        chat_model=_opt(config, "--chat-model"), profile=_opt(config, "--profile") or "fireworks",
        context_length=_opt(config, "--context-length"), max_examples=_opt(config, "--conformance-max-examples"),
        only=ids, timeout=_opt(config, "--conformance-timeout") or 60.0,
        concurrency=_opt(config, "--conformance-concurrency") or 4,
    )
    try:
        if run_config.base_url:
            state.report = run_suite(run_config)
        else:
            from conformance.embedded import embedded_or_external

            with embedded_or_external(run_config.profile, api_key=api_key) as (base_url, embedded):
                run_config.base_url, run_config.embedded = base_url, embedded
                state.report = run_suite(run_config)
    except Unreachable as exc:
        state.error = f"endpoint unreachable: {exc}"
        return state
    except Exception as exc:  # profile errors, server start failures: one message on every item
        state.error = f"{type(exc).__name__}: {exc}"
        return state
    state.results = {r.id: r for r in state.report.requirements}
    report_dir = _opt(config, "--conformance-report-dir")
    if report_dir:
        try:
            from reports import write_run_outputs

            write_run_outputs(state.report, report_dir)
        except Exception as exc:  # pragma: no cover - reported, not fatal
            state.error = f"could not write reports to {report_dir}: {exc}"
    return state


def pytest_configure(config: pytest.Config) -> None:
    setattr(config, _STATE_KEY, _State())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _active(config):
        return
    collector = ConformanceCollector.from_parent(session, name="conformance", nodeid="conformance")
    collected = collector.collect()
    items.extend(collected)
    session.testscollected += len(collected)


def pytest_report_header(config: pytest.Config) -> str | None:
    if not _active(config):
        return None
    target = _opt(config, "--base-url") or os.environ.get("CONFORMANCE_BASE_URL") or "embedded reference server"
    return f"conformance: {target} (profile {_opt(config, '--profile')})"
