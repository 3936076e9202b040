"""Running real clients for the sdk.* requirements: evidence recording, the Node SDK cache, the legacy SDK.

- `Recorder`: httpx event hooks for the client the official `openai` Python SDK (and langchain-openai, which
  wraps it) is given, so every request a client makes lands in the scenario's evidence, redacted, like the
  suite's own requests.
- `node_sdk()`: the official `openai` npm package, installed on first use into a cache directory
  (``~/.cache/openai-conformance/node/``, or ``$CONFORMANCE_CACHE_DIR/node``); `run_node()` runs one of the
  scripts next to this file with node. Raises Skipped when node or npm is missing or the install fails.
- `run_legacy()`: runs ``legacy_openai.py`` (the seed's samples with openai<1) with the interpreter named by
  ``$CONFORMANCE_LEGACY_PYTHON`` (``tox -e sdk-legacy`` builds one); Skipped when it is not set.

Scripts are given the base URL, models and timeout through the environment, and the API key through the
environment only (never on a command line); they print one JSON object on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from conformance.redact import shrink, truncate_events
from conformance.results import Exchange, HttpRequestRecord, HttpResponseRecord, Skipped
from conformance.sse import SSEParser

HERE = Path(__file__).resolve().parent
NODE_OPENAI_MAJOR = 7  # the official npm package's current major version
LEGACY_ENV = "CONFORMANCE_LEGACY_PYTHON"
LEGACY_HINT = f"set {LEGACY_ENV} to a Python with openai<1 (tox -e sdk-legacy)"
MAX_TEE_BYTES = 4 * 1024 * 1024
NPM_INSTALL_TIMEOUT = 300.0

_install_lock = threading.Lock()


def cache_dir() -> Path:
    root = os.environ.get("CONFORMANCE_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "openai-conformance"


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- evidence recording for in-process clients -------------------------------------------------------------


class Recorder:
    """httpx(-compatible) event hooks that record each exchange a client makes into a suite Client's evidence.

    `record(exchange)` is called once per request, when the response headers arrive; a streamed body is
    teed as the client reads it and its events are filled in when the stream closes.
    """

    def __init__(self, redact: Callable[[Any], Any], redact_headers: Callable[[Any], dict[str, str]],
                 record: Callable[[Exchange, Any], None], note: str) -> None:
        self._redact = redact
        self._redact_headers = redact_headers
        self._record = record
        self.note = note
        self._pending: dict[int, HttpRequestRecord] = {}
        self._started: dict[int, float] = {}
        self.exchanges: list[Exchange] = []

    @property
    def hooks(self) -> dict[str, list[Callable[[Any], None]]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    def on_request(self, request: Any) -> None:
        try:
            body: Any = None
            content = bytes(getattr(request, "content", b"") or b"")
            if content:
                try:
                    body = shrink(json.loads(content))
                except ValueError:
                    body = content.decode("utf-8", errors="replace")[:8192]
            self._pending[id(request)] = HttpRequestRecord(
                method=str(request.method), url=self._redact(str(request.url)),
                headers=self._redact_headers(request.headers), body=self._redact(body),
            )
            self._started[id(request)] = time.monotonic()
        except Exception:  # evidence is best effort: never break the client
            pass

    def on_response(self, response: Any) -> None:
        try:
            request = response.request
            record = self._pending.pop(id(request), None) or HttpRequestRecord(
                method=str(request.method), url=self._redact(str(request.url)))
            elapsed = round(time.monotonic() - self._started.pop(id(request), time.monotonic()), 3)
            headers = self._redact_headers(response.headers)
            exchange = Exchange(
                request=record,
                response=HttpResponseRecord(status=response.status_code, headers=headers, elapsed_s=elapsed),
                note=self.note,
            )
            usage = None
            if "text/event-stream" in response.headers.get("content-type", "") and response.status_code == 200:
                self._tee(response, exchange)
            else:
                response.read()
                text = response.content.decode("utf-8", errors="replace")
                try:
                    parsed = json.loads(text)
                    assert exchange.response is not None
                    exchange.response.body = self._redact(shrink(parsed))
                    usage = parsed.get("usage") if isinstance(parsed, dict) else None
                except ValueError:
                    assert exchange.response is not None
                    exchange.response.body = self._redact(text[:8192])
            self.exchanges.append(exchange)
            self._record(exchange, usage)
        except Exception:
            pass

    def _tee(self, response: Any, exchange: Exchange) -> None:
        base = next((c for c in type(response.stream).__mro__ if c.__name__ == "SyncByteStream"), None)
        if base is None:
            return
        inner = response.stream
        parser = SSEParser()
        redact = self._redact
        seen = [0]

        def finish() -> None:
            result = parser.close()
            if exchange.response is not None:
                exchange.response.events = redact(truncate_events(result.events))
            if result.framing_errors:
                exchange.error = redact("; ".join(result.framing_errors[:5]))

        class Tee(base):  # type: ignore[misc, valid-type]
            def __iter__(self) -> Iterator[bytes]:
                for data in inner:
                    if seen[0] < MAX_TEE_BYTES:
                        parser.feed(data)
                        seen[0] += len(data)
                    yield data

            def close(self) -> None:
                try:
                    inner.close()
                finally:
                    with contextlib.suppress(Exception):
                        finish()

        response.stream = Tee()

    def last_error_message(self) -> Any:
        """error.message of the last recorded response body, when it is an OpenAI error envelope."""
        for exchange in reversed(self.exchanges):
            body = exchange.response.body if exchange.response is not None else None
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                return body["error"].get("message")
            return None
        return None


# -- scripts run in another runtime -------------------------------------------------------------------------


def script_env(base_url: str, api_key: str | None, model: str, chat_model: str, timeout: float,
               stream_usage: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a client script: the key travels here only, never on the command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONFORMANCE_SDK_"))}
    env.update({
        "CONFORMANCE_SDK_BASE_URL": base_url,
        "CONFORMANCE_SDK_API_KEY": api_key or "",
        "CONFORMANCE_SDK_MODEL": model,
        "CONFORMANCE_SDK_CHAT_MODEL": chat_model or model,
        "CONFORMANCE_SDK_TIMEOUT": f"{timeout:g}",
        "CONFORMANCE_SDK_STREAM_USAGE": stream_usage,
        "NO_COLOR": "1",
    })
    env.update(extra or {})
    return env


def _run_json(argv: list[str], env: dict[str, str], timeout: float, cwd: Path | None, what: str) -> dict[str, Any]:
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ScriptFailure(f"{what} did not finish within {timeout:g}s", timed_out=True) from None
    except OSError as exc:
        raise Skipped(f"cannot run {what}: {exc}") from None
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise ScriptFailure(f"{what} exited {proc.returncode} without a JSON result: "
                            f"{_one_line(proc.stderr or proc.stdout) or 'no output'}")
    try:
        data = json.loads(lines[-1])
    except ValueError:
        raise ScriptFailure(f"{what} printed invalid JSON: {_one_line(lines[-1])}") from None
    if not isinstance(data, dict):
        raise ScriptFailure(f"{what} printed {_one_line(lines[-1])}, not a JSON object")
    return data


class ScriptFailure(Exception):
    """A client script crashed or hung (not an endpoint verdict by itself: the scenario decides)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


# -- Node ------------------------------------------------------------------------------------------------------


def node_dir() -> Path:
    return cache_dir() / "node"


def _installed_version(directory: Path) -> str | None:
    package = directory / "node_modules" / "openai" / "package.json"
    try:
        version = json.loads(package.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (pytest-xdist workers, parallel runs) where fcntl exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: the thread lock still holds
            pass
        yield


def node_sdk() -> tuple[str, Path, str]:
    """(node executable, directory holding node_modules/openai, its version); installs on first use."""
    node = shutil.which("node")
    if node is None:
        raise Skipped("node not found on PATH")
    directory = node_dir()
    version = _installed_version(directory)
    if version and version.split(".")[0] == str(NODE_OPENAI_MAJOR):
        return node, directory, version
    npm = shutil.which("npm")
    if npm is None:
        raise Skipped(f"npm not found on PATH (needed once to install openai@{NODE_OPENAI_MAJOR} into {directory})")
    with _install_lock, _file_lock(directory / ".install.lock"):
        version = _installed_version(directory)
        if not (version and version.split(".")[0] == str(NODE_OPENAI_MAJOR)):
            manifest = directory / "package.json"
            if not manifest.exists():
                manifest.write_text(json.dumps({"name": "openai-conformance-node-clients", "private": True,
                                                "type": "module"}, indent=2) + "\n", encoding="utf-8")
            argv = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"openai@{NODE_OPENAI_MAJOR}"]
            try:
                proc = subprocess.run(argv, cwd=directory, capture_output=True, text=True,
                                      timeout=NPM_INSTALL_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                raise Skipped(f"`npm install openai@{NODE_OPENAI_MAJOR}` into {directory} did not finish within "
                              f"{NPM_INSTALL_TIMEOUT:g}s (offline? no npm registry?)") from None
            except OSError as exc:
                raise Skipped(f"cannot run npm: {exc}") from None
            version = _installed_version(directory)
            if proc.returncode != 0 or not version:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise Skipped(f"cannot install the openai npm package (openai@{NODE_OPENAI_MAJOR}) into {directory}: "
                              f"npm exited {proc.returncode}: {_one_line(' '.join(tail)) or 'no output'} "
                              "(offline? no npm registry?)")
    return node, directory, version


def run_node(script: str, env: dict[str, str], timeout: float) -> tuple[dict[str, Any], str]:
    """Run conformance/sdk_clients/node/<script> with node next to the cached SDK; (its JSON, SDK version)."""
    node, directory, version = node_sdk()
    source = HERE / "node" / script
    target = directory / script
    # ESM resolves `import "openai"` from the script's own directory, so the script runs from the cache.
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    data = _run_json([node, str(target)], env, timeout, directory, f"node {script}")
    return data, version


# -- legacy openai<1 -------------------------------------------------------------------------------------------


def legacy_python() -> str:
    python = os.environ.get(LEGACY_ENV, "").strip()
    if not python:
        raise Skipped(LEGACY_HINT)
    if not (Path(python).is_file() or shutil.which(python)):
        raise Skipped(f"{LEGACY_ENV}={python!r} is not an executable; {LEGACY_HINT}")
    return python


def run_legacy(env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run legacy_openai.py with $CONFORMANCE_LEGACY_PYTHON (isolated: -I, no project on the path)."""
    python = legacy_python()
    data = _run_json([python, "-I", str(HERE / "legacy_openai.py")], env, timeout, None, "the legacy openai script")
    if data.get("skip"):
        raise Skipped(f"{data['skip']}; {LEGACY_HINT}")
    return data


__all__ = [
    "LEGACY_ENV", "LEGACY_HINT", "NODE_OPENAI_MAJOR", "Recorder", "ScriptFailure", "cache_dir", "legacy_python",
    "node_dir", "node_sdk", "run_legacy", "run_node", "script_env",
]
