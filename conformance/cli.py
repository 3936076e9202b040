"""`conformance` command line.

    conformance run [--base-url URL] [--api-key KEY] [--model NAME] [--chat-model NAME]
                    [--profile fireworks|openai|FILE] [--context-length N] [--report-dir DIR]
                    [--max-examples N] [--only PATTERN] [--timeout SECONDS] [--concurrency N]
                    [--expectations FILE]
    conformance manifest [--write | --check]
    conformance profile show NAME
    conformance probe [--base-url URL] [--api-key KEY] [--model NAME] [--chat-model NAME]
                      [--context-length N] [--timeout S] [--out FILE] [--server-profile NAME]
    conformance docs|diff|matrix ...      (see reports/)

Exit status of `run`: 0 when every applicable MUST requirement passes (with --expectations:
no new MUST failure), 1 otherwise, 2 for a usage error or an unreachable endpoint.
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conformance import __version__
from conformance.results import Level, RunReport, Status

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
MAX_LISTED = 40
KEY_ENV = ("CONFORMANCE_API_KEY", "OPENAI_API_KEY")
STATUS_STYLE = {
    Status.PASS: "green", Status.FAIL: "bold red", Status.ERROR: "red", Status.TIMEOUT: "magenta",
    Status.SKIP: "dim", Status.NOT_APPLICABLE: "dim",
}


class UsageError(Exception):
    """Reported as one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


# -- parser ---------------------------------------------------------------------------------


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from conformance.runner import DEFAULT_CONCURRENCY, DEFAULT_MAX_EXAMPLES, DEFAULT_TIMEOUT

    parser.add_argument("--base-url", help="API base as the openai SDK takes it, e.g. http://127.0.0.1:8000/v1 "
                        "(default: start the embedded reference server)")
    parser.add_argument("--api-key", help="API key (default: $CONFORMANCE_API_KEY or $OPENAI_API_KEY)")
    parser.add_argument("--model", help="model for /completions (default: the first one /models lists)")
    parser.add_argument("--chat-model", help="model for /chat/completions (default: --model)")
    parser.add_argument("--profile", default="fireworks", help="behaviour profile: fireworks, openai or a YAML file")
    parser.add_argument("--context-length", type=_positive_int,
                        help="context window in tokens (default: what /models reports)")
    parser.add_argument("--report-dir", default=str(Path("reports") / "latest"),
                        help="where results.json, junit.xml and report.html go (default: reports/latest)")
    parser.add_argument("--max-examples", type=_positive_int,
                        help=f"examples per property test (default: {DEFAULT_MAX_EXAMPLES})")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only requirements whose id matches (fnmatch; repeatable; 'stop' = 'stop.*')")
    parser.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per request, streams included (default: {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--concurrency", type=_positive_int, default=DEFAULT_CONCURRENCY,
                        help=f"scenarios run in parallel (default: {DEFAULT_CONCURRENCY})")
    parser.add_argument("--expectations", metavar="FILE",
                        help="YAML file of known failures; exit 1 only on new MUST failures")


def _delegate(sub: Any, name: str, help_text: str) -> None:
    """`conformance <name>` handled by reports.<name>: add_arguments(parser) and cli(namespace) -> int."""
    try:
        module = importlib.import_module(f"reports.{name}")
    except ImportError as exc:
        parser = sub.add_parser(name, help=help_text + " (unavailable)", add_help=True)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(handler=lambda args, _exc=exc: _unavailable(name, _exc))
        return
    parser = sub.add_parser(name, help=help_text, description=(module.__doc__ or "").strip().split("\n")[0])
    add = getattr(module, "add_arguments", None)
    if callable(add):
        add(parser)
    else:
        parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=lambda args, _m=module: _call_report(_m, args))


def _unavailable(name: str, exc: Exception) -> int:
    raise UsageError(f"conformance {name}: not available in this installation (reports.{name}: {exc})")


def _call_report(module: Any, args: argparse.Namespace) -> int:
    cli = getattr(module, "cli", None)
    if not callable(cli):
        raise UsageError(f"conformance {args.command}: reports.{args.command} has no cli(args)")
    return int(cli(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="conformance", description="Conformance suite for OpenAI-compatible HTTP APIs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run the suite against an endpoint (default: the embedded reference server)")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)

    manifest = sub.add_parser("manifest", help="write or check conformance/manifest.yaml")
    group = manifest.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="regenerate the manifest from the scenario registry")
    group.add_argument("--check", action="store_true", help="exit 1 if the manifest is out of date (default)")
    manifest.set_defaults(handler=cmd_manifest)

    profile = sub.add_parser("profile", help="inspect behaviour profiles")
    profile_sub = profile.add_subparsers(dest="profile_command", metavar="ACTION", parser_class=_Parser)
    show = profile_sub.add_parser("show", help="which requirements apply under a profile, and why")
    show.add_argument("name", help="fireworks, openai or a YAML file")
    show.set_defaults(handler=cmd_profile_show)
    profile_sub.add_parser("list", help="list built-in profiles").set_defaults(handler=cmd_profile_list)
    profile.set_defaults(handler=lambda args: _missing_action("profile", "show NAME | list"))

    from conformance.probe import cli as probe_cli

    probe = sub.add_parser("probe", help="infer an endpoint's behaviour profile and write it as a profile YAML")
    probe_cli.add_arguments(probe)
    probe.set_defaults(handler=probe_cli.cmd_probe)

    _delegate(sub, "docs", "render the requirement catalogue and JSON Schemas as documents")
    _delegate(sub, "diff", "compare two results.json files (regressions exit 1)")
    _delegate(sub, "matrix", "compatibility matrix of several results.json files")
    return parser


def _missing_action(command: str, choices: str) -> int:
    raise UsageError(f"conformance {command}: expected {choices}")


# -- run ------------------------------------------------------------------------------------


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key:
        return str(args.api_key)
    for name in KEY_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from conformance.profiles import ProfileError, load_profile
    from conformance.runner import RunConfig, Unreachable

    out = Console()
    err = Console(stderr=True)
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        raise UsageError(f"conformance run: {exc}") from None
    expectations = None
    if args.expectations:
        try:
            from reports.expectations import ExpectationsError, load_expectations
        except ImportError as exc:
            raise UsageError(f"conformance run: --expectations needs the reports package ({exc})") from None
        try:
            expectations = load_expectations(args.expectations)
        except ExpectationsError as exc:
            raise UsageError(f"conformance run: {exc}") from None
        if expectations.profile is not None and expectations.profile != profile.id:
            raise UsageError(f"conformance run: {args.expectations} is for profile {expectations.profile!r}, "
                             f"not {profile.id!r}")
    if args.base_url is not None and not args.base_url.startswith(("http://", "https://")):
        raise UsageError(f"conformance run: --base-url must start with http:// or https://, got {args.base_url!r}")

    api_key = _api_key(args)
    config = RunConfig(
        base_url=args.base_url or "", api_key=api_key, model=args.model, chat_model=args.chat_model,
        profile=args.profile, context_length=args.context_length, report_dir=args.report_dir,
        max_examples=args.max_examples, only=list(args.only), timeout=args.timeout,
        concurrency=args.concurrency, expectations=None,
    )

    def execute() -> RunReport:
        return _run_with_progress(config, profile, err)

    try:
        if args.base_url:
            report = execute()
        else:
            from conformance.embedded import EmbeddedServer, EmbeddedServerError

            err.print(f"starting the embedded reference server (profile {profile.id}, model tiny)...")
            # Without a key of the user's, the embedded server gets a throwaway one so the auth.*
            # requirements are exercised too; reports redact it like any other key.
            config.api_key = api_key or f"sk-embedded-{secrets.token_hex(16)}"
            try:
                server = EmbeddedServer(profile=args.profile, model="tiny", api_key=config.api_key)
                with server as base_url:
                    config.base_url = base_url
                    config.embedded = True
                    report = execute()
            except EmbeddedServerError as exc:
                first, _, rest = str(exc).partition("\n")
                err.print(rest, markup=False, highlight=False) if rest else None
                raise UsageError(f"conformance run: {first}") from None
    except Unreachable as exc:
        raise UsageError(f"conformance run: endpoint unreachable: {exc}") from None

    if expectations is not None:
        from reports.expectations import apply_expectations

        report = apply_expectations(report, expectations)
    paths = write_outputs(report, Path(args.report_dir), expectations, err)
    ok = _print_summary(out, report, paths, expectations)
    return EXIT_OK if ok else EXIT_FAIL


def _run_with_progress(config: Any, profile: Any, console: Console) -> RunReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from conformance.runner import run_suite

    with Progress(
        TextColumn("[bold]conformance[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console, transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("discovering", total=None)

        def progress(name: str, completed: int, total: int) -> None:
            bar.update(task, total=total, completed=completed, description=name or "running")

        return run_suite(config, progress, profile=profile)


def write_outputs(report: RunReport, out_dir: Path, expectations: Any, err: Console) -> dict[str, Path]:
    """results.json (schema-validated), then junit.xml, report.html, summary.md when reports is there."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    results = out_dir / "results.json"
    try:
        from reports.io import write_results_json
    except ImportError:
        data = report.model_dump(mode="json")
        try:
            from conformance.schemas import validate
        except ImportError:
            problems: list[str] = []
        else:
            problems = validate("report.results", data)
        if problems:
            raise UsageError(f"conformance run: refusing to write {results}: {problems[0]}") from None
        results.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        try:
            write_results_json(report, results)
        except Exception as exc:
            raise UsageError(f"conformance run: {str(exc).splitlines()[0]}") from None
    paths["results"] = results
    writers = (("junit", "reports.junit", "write_junit", "junit.xml"),
               ("html", "reports.html", "write_html", "report.html"),
               ("markdown", "reports.markdown", "write_markdown", "summary.md"))
    for key, module_name, function, filename in writers:
        try:
            writer = getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError):
            err.print(f"[yellow]note:[/] {filename} not written ({module_name} is not available)")
            continue
        try:
            paths[key] = writer(report, out_dir / filename, expectations=expectations) or out_dir / filename
        except Exception as exc:  # a report bug must not hide the results
            err.print(f"[red]could not write {filename}:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
    return paths


def _print_summary(console: Console, report: RunReport, paths: dict[str, Path], expectations: Any) -> bool:
    counts = Table(title=escape(f"{report.profile.id} profile against {report.target.base_url} "
                                f"(model {report.target.model})"), show_header=True)
    for status in Status:
        counts.add_column(status.value, justify="right", style=STATUS_STYLE[status])
    counts.add_row(*[str(report.summary.get(s.value, 0)) for s in Status])
    console.print(counts)

    bad = [r for r in report.requirements if r.status in (Status.FAIL, Status.ERROR, Status.TIMEOUT)]
    must = [r for r in bad if r.level == Level.MUST]
    others = [r for r in bad if r.level != Level.MUST]
    if must:
        console.print(f"[bold]Failing MUST requirements ({len(must)}):[/]")
        for r in must[:MAX_LISTED]:
            expected = " (expected)" if r.expected is not None and r.expected == r.status else ""
            console.print(f"  [{STATUS_STYLE[r.status]}]{r.status.value:<7}[/]{expected} {escape(r.id)}: "
                          f"{escape(_one_line(r.message))}", highlight=False, soft_wrap=True)
        if len(must) > MAX_LISTED:
            console.print(f"  ... and {len(must) - MAX_LISTED} more (see the reports)")
    if others:
        console.print(f"Failing SHOULD/MAY requirements ({len(others)}): "
                      + escape(", ".join(r.id for r in others)), highlight=False, soft_wrap=True)
    cost = report.cost
    console.print(f"spent {cost.requests} requests, {cost.prompt_tokens} prompt + {cost.completion_tokens} "
                  f"completion tokens in {report.duration_s:.1f}s")
    for key, path in paths.items():
        console.print(f"{key}: {path}", highlight=False)
    if expectations is not None:
        from reports.expectations import gate

        result = gate(report)
        console.print(result.summary(), highlight=False, markup=False)
        ok = result.ok
    else:
        ok = report.verdict == Status.PASS
    if ok:
        console.print("[bold green]PASS[/]: every applicable MUST requirement passes"
                      + (" or is a known failure" if expectations is not None else ""))
    else:
        console.print(f"[bold red]FAIL[/]: {len(must)} MUST requirement(s) not met")
    return ok


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- other commands ----------------------------------------------------------------------------


def cmd_manifest(args: argparse.Namespace) -> int:
    try:
        manifest = importlib.import_module("conformance.manifest")
    except ImportError as exc:
        raise UsageError(f"conformance manifest: conformance.manifest is not available ({exc})") from None
    cli = getattr(manifest, "cli", None)
    if callable(cli):
        return int(cli(args) or 0)
    if args.write:
        writer = getattr(manifest, "write_manifest", None)
        if not callable(writer):
            raise UsageError("conformance manifest: conformance.manifest has no write_manifest()")
        path = writer()
        print(f"wrote {path}" if path else "manifest written")
        return EXIT_OK
    checker = getattr(manifest, "check_manifest", None)
    if not callable(checker):
        raise UsageError("conformance manifest: conformance.manifest has no check_manifest()")
    problems = checker() or []
    for problem in problems:
        print(problem)
    return EXIT_FAIL if problems else EXIT_OK


def cmd_profile_show(args: argparse.Namespace) -> int:
    from conformance.catalogue import load_catalogue
    from conformance.profiles import ProfileError, load_profile
    from conformance.runner import applicability

    try:
        profile = load_profile(args.name)
    except ProfileError as exc:
        raise UsageError(f"conformance profile show: {exc}") from None
    console = Console()
    console.print(f"[bold]{profile.id}[/]: {profile.title}  (source: {profile.source or profile.path})")
    axes = Table(title="behaviour")
    axes.add_column("axis")
    axes.add_column("value")
    for axis, value in profile.behaviour.items():
        axes.add_row(axis, value)
    console.print(axes)
    table = Table(title="requirements")
    table.add_column("requirement", no_wrap=True)
    table.add_column("level")
    table.add_column("applies")
    table.add_column("reason", overflow="fold")
    applies = 0
    catalogue = load_catalogue()
    for rid, requirement in catalogue.items():
        status, reason = applicability(requirement, profile)
        if status is None:
            applies += 1
        table.add_row(rid, requirement.level.value, "[green]yes[/]" if status is None else f"[dim]{status.value}[/]",
                      escape(reason))
    console.print(table)
    console.print(f"{applies} of {len(catalogue)} requirements apply")
    return EXIT_OK


def cmd_profile_list(args: argparse.Namespace) -> int:
    from conformance.profiles import builtin_profiles, load_profile

    for name in builtin_profiles():
        print(f"{name}\t{load_profile(name).title}")
    return EXIT_OK


# -- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(list(argv) if argv is not None else None)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(handler(args))
    except UsageError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse --help / --version
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
