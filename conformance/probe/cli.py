"""`conformance probe`: arguments and handler (wired into conformance/cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from conformance.cli import _positive_float, _positive_int

    parser.add_argument("--base-url", help="API base as the openai SDK takes it, e.g. http://127.0.0.1:8000/v1 "
                        "(default: probe the embedded reference server)")
    parser.add_argument("--api-key", help="API key (default: $CONFORMANCE_API_KEY or $OPENAI_API_KEY)")
    parser.add_argument("--model", help="model for /completions (default: the first one /models lists)")
    parser.add_argument("--chat-model", help="model for /chat/completions (default: --model)")
    parser.add_argument("--context-length", type=_positive_int,
                        help="context window in tokens (default: what /models reports)")
    parser.add_argument("--timeout", type=_positive_float, default=60.0,
                        help="seconds per request, streams included (default: 60)")
    parser.add_argument("--out", metavar="FILE", help="write the profile YAML here (default: print it)")
    parser.add_argument("--server-profile", default="fireworks",
                        help="without --base-url: the embedded reference server's profile (default: fireworks)")


def cmd_probe(args: argparse.Namespace) -> int:
    from rich.console import Console

    from conformance.cli import EXIT_OK, UsageError, _api_key
    from conformance.probe import ProbeConfig, print_table, probe_endpoint, to_yaml
    from conformance.probe.infer import ProbeResult
    from conformance.runner import Unreachable

    if args.base_url is not None and not args.base_url.startswith(("http://", "https://")):
        raise UsageError(f"conformance probe: --base-url must start with http:// or https://, got {args.base_url!r}")
    api_key = _api_key(args)
    out = Console()
    err = Console(stderr=True)

    def probe(base_url: str) -> ProbeResult:
        return probe_endpoint(ProbeConfig(base_url=base_url, api_key=api_key, model=args.model,
                                          chat_model=args.chat_model, context_length=args.context_length,
                                          timeout=args.timeout))

    try:
        if args.base_url:
            result = probe(args.base_url)
        else:
            from conformance.embedded import EmbeddedServer, EmbeddedServerError

            err.print(f"starting the embedded reference server (profile {args.server_profile}, model tiny)...")
            try:
                with EmbeddedServer(profile=args.server_profile, model="tiny", api_key=api_key) as base_url:
                    result = probe(base_url)
            except EmbeddedServerError as exc:
                first, _, rest = str(exc).partition("\n")
                if rest:
                    err.print(rest, markup=False, highlight=False)
                raise UsageError(f"conformance probe: {first}") from None
    except Unreachable as exc:
        raise UsageError(f"conformance probe: endpoint unreachable: {exc}") from None

    print_table(result, out)
    text = to_yaml(result)
    if args.out:
        path = Path(args.out)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out.print(f"wrote {path} (use it with: conformance run --profile {path})", highlight=False)
    else:
        out.rule("profile")
        print(text, end="")
    return EXIT_OK
