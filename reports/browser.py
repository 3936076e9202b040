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


# Runs in a wrapper page around the target (an iframe, same origin with --allow-file-access-from-files):
# collects the text nodes a person can see. A text node is visible when no ancestor is display:none or
# visibility:hidden, it is not inside a closed <details> (other than in that details' <summary>), and its
# element has a layout box. The result goes into #visible-text of the wrapper as JSON.
_VISIBLE_TEXT_JS = """
(function () {
  var out = document.getElementById("visible-text");
  var frame = document.getElementById("target");
  frame.addEventListener("load", function () {
    try {
      var doc = frame.contentDocument, win = frame.contentWindow;
      var shown = function (el) {
        for (var e = el, child = null; e; child = e, e = e.parentElement) {
          if (e.tagName === "DETAILS" && !e.open && !(child && child.tagName === "SUMMARY")) return false;
          var cs = win.getComputedStyle(e);
          if (cs.display === "none" || cs.visibility === "hidden") return false;
        }
        return el.getClientRects().length > 0;
      };
      var root = doc.body;
      if (WITHIN_ANCHOR) {
        var id = decodeURIComponent(String(win.location.hash).slice(1));
        root = id ? doc.getElementById(id) : null;
        if (!root) throw new Error("no element with id " + JSON.stringify(id) + " (the link's #fragment)");
        if (!shown(root)) throw new Error("the element with id " + JSON.stringify(id) + " is not visible");
      }
      var walker = doc.createTreeWalker(root, NodeFilter.SHOW_TEXT), parts = [], node;
      while ((node = walker.nextNode())) {
        if (node.parentElement && node.data.trim() && shown(node.parentElement)) parts.push(node.data);
      }
      out.textContent = JSON.stringify({ok: true, url: String(win.location.href), text: parts.join("\\n")});
    } catch (err) {
      out.textContent = JSON.stringify({ok: false, error: String(err)});
    }
  });
  frame.src = __TARGET_URL__;
})();
"""


def _page_url(page: str | Path) -> str:
    text = str(page)
    return text if "://" in text else Path(page).resolve().as_uri()


def visible_text(
    page: str | Path, *, within_anchor: bool = False, width: int = 1280, height: int = 900, timeout: float = 90
) -> str:
    """The text a person can see on `page` (a local file, or a file:// URL with a #fragment).

    Unlike `dump_dom`, this leaves out what is not rendered: the content of a closed `<details>`
    (its `<summary>` stays), anything under `display: none` or `visibility: hidden`, `<script>` and
    `<style>`. Text nodes are joined with newlines. `within_anchor`: only the text inside the element
    the URL's #fragment names (`BrowserError` when there is no such element or it is not visible).
    """
    import html as html_module
    import json
    import re

    target = _page_url(page)
    script = (_VISIBLE_TEXT_JS.replace("__TARGET_URL__", json.dumps(target).replace("</", "<\\/"))
              .replace("WITHIN_ANCHOR", "true" if within_anchor else "false"))
    wrapper = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        '<pre id="visible-text">PENDING</pre>'
        f'<iframe id="target" style="width:{width}px;height:{height}px;border:0"></iframe>'
        f"<script>{script}</script></body></html>"
    )
    with tempfile.TemporaryDirectory(prefix="visible-text-") as tmp:
        page_file = Path(tmp) / "wrapper.html"
        page_file.write_text(wrapper, encoding="utf-8")
        dom = _run(["--allow-file-access-from-files", "--virtual-time-budget=3000", "--dump-dom",
                    page_file.as_uri()], timeout).stdout
    match = re.search(r'<pre id="visible-text">(.*?)</pre>', dom, flags=re.S)
    raw = html_module.unescape(match.group(1)) if match else ""
    try:
        result = json.loads(raw)
    except ValueError:
        raise BrowserError(f"could not read the visible text of {target} (got {raw[:200]!r})") from None
    if not result.get("ok"):
        raise BrowserError(f"could not read the visible text of {target}: {result.get('error')}")
    return str(result["text"])


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
    if len(argv) == 2 and argv[0] == "text":
        sys.stdout.write(visible_text(argv[1]) + "\n")
        return 0
    print("usage: python -m reports.browser screenshot PAGE.html OUT.png | dom PAGE.html | text PAGE.html",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
