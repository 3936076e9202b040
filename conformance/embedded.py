"""Start the reference server as a subprocess for a run (or a test session), and stop it.

    with EmbeddedServer("fireworks") as base_url:     # "http://127.0.0.1:PORT/v1"
        ...

`CONFORMANCE_BASE_URL` in the environment points `embedded_or_external()` (and the pytest
fixture built on it) at an already running server instead, like llama.cpp's server tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

START_TIMEOUT = 180.0  # the first start may build the tiny model
ENV_BASE_URL = "CONFORMANCE_BASE_URL"
LOG_TAIL = 4000


class EmbeddedServerError(RuntimeError):
    """The reference server did not start (the message includes the tail of its log)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """Context manager running `python -m reference_server` on a free loopback port."""

    def __init__(self, profile: str = "fireworks", model: str = "tiny", api_key: str | None = None, *,
                 start_timeout: float = START_TIMEOUT, extra_args: list[str] | None = None,
                 port: int | None = None) -> None:
        self.profile = profile
        self.model = model
        self.api_key = api_key
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._log_file: object | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", str(self.port),
               "--profile", self.profile, "--model", self.model, *self.extra_args]
        return cmd  # the key travels in the environment, never on a command line others can read

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        if self.api_key:
            text = text.replace(self.api_key, "***")
        return text[-LOG_TAIL:]

    def start(self) -> str:
        if self.port is None:
            self.port = free_port()
        fd, name = tempfile.mkstemp(prefix="reference-server-", suffix=".log")
        self.log_path = Path(name)
        log = os.fdopen(fd, "wb")
        self._log_file = log
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.pop("REFERENCE_SERVER_API_KEY", None)
        if self.api_key:
            env["REFERENCE_SERVER_API_KEY"] = self.api_key
        # The repository root on the path, so `-m reference_server` works from a checkout.
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError as exc:
            self.stop()
            raise EmbeddedServerError(f"cannot start the reference server: {exc}") from None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                code = self.process.poll()
                if code is not None:
                    tail = self.log_tail()
                    self.stop()
                    raise EmbeddedServerError(
                        f"the reference server exited with status {code} before it was ready; log:\n{tail}"
                    )
                try:
                    if http.get(f"{self.root_url}/health").status_code == 200:
                        return self.base_url
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise EmbeddedServerError(
                        f"the reference server was not ready within {self.start_timeout:g}s; log:\n{tail}"
                    )
                time.sleep(0.25)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=10)
        log = self._log_file
        self._log_file = None
        if log is not None:
            with contextlib.suppress(Exception):
                log.close()  # type: ignore[attr-defined]
        if self.log_path is not None and process is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def embedded_or_external(profile: str = "fireworks", model: str = "tiny",
                         api_key: str | None = None) -> Iterator[tuple[str, bool]]:
    """(base_url, embedded): $CONFORMANCE_BASE_URL when set, else a fresh EmbeddedServer."""
    external = os.environ.get(ENV_BASE_URL)
    if external:
        yield external.rstrip("/"), False
        return
    with EmbeddedServer(profile, model, api_key) as base_url:
        yield base_url, True
