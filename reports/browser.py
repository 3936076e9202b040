"""Headless Chromium helpers: what a person sees of a generated page (tests, README screenshot).

Uses Debian's `chromium` (`apt-get install chromium`); nothing is downloaded. Each call starts a
fresh browser with a throw-away profile and no network features.

    python -m reports.browser screenshot reports/latest/matrix/matrix.html docs/matrix.png
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    pass


def chromium_path() -> str | None:
    """The Chromium binary ($CHROMIUM overrides), or None when not installed."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return next((c for c in CANDIDATES if Path(c).is_file()), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    exe = chromium_path()
    if exe is None:
        raise BrowserError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BrowserError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def dump_dom(page: str | Path, *, timeout: float = 90) -> str:
    """The DOM after loading `page` (a local file), serialised as HTML."""
    url = Path(page).resolve().as_uri()
    return _run(["--virtual-time-budget=2000", "--dump-dom", url], timeout).stdout


def screenshot(page: str | Path, png: str | Path, *, width: int = 1280, height: int = 900, timeout: float = 90) -> Path:
    """Save a `width` x `height` screenshot of `page` (a local file) to `png`."""
    url = Path(page).resolve().as_uri()
    out = Path(png).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={out}", f"--window-size={width},{height}", url], timeout)
    if not out.is_file() or out.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no screenshot to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 3 and argv[0] == "screenshot":
        print(screenshot(argv[1], argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "dom":
        sys.stdout.write(dump_dom(argv[1]))
        return 0
    print("usage: python -m reports.browser screenshot PAGE.html OUT.png | dom PAGE.html", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
