"""Credentials embedded in --base-url (http://user:password@host) never reach a message, a report or results.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.redact import Redactor, redact_url, url_secrets

# `fakes` lives in tests/; appended so that the project's own packages always win.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from fakes.server import FakeConfig, serve_fake  # noqa: E402

PASSWORD = "sk-inurl-PLANTED-5678"
USER = "alice"


def _with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{PASSWORD}@", 1)


def _files_text(directory: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize(("url", "expected"), [
    (f"http://{USER}:{PASSWORD}@127.0.0.1:1/v1", "http://***@127.0.0.1:1/v1"),
    (f"https://{PASSWORD}@api.example.com/v1", "https://***@api.example.com/v1"),
    ("HTTP://u:p%40ss@h:8000/v1?x=1", "HTTP://***@h:8000/v1?x=1"),
    (f"cannot connect to http://{USER}:{PASSWORD}@h/v1: refused", "cannot connect to http://***@h/v1: refused"),
    ("http://h/v1/a@b and mailto:x@y.z", "http://h/v1/a@b and mailto:x@y.z"),  # no userinfo: untouched
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_redact_url_masks_userinfo(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert Redactor(None).text(url) == expected


def test_redactor_masks_url_credentials_wherever_they_occur() -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:1/v1"
    assert url_secrets(url) == [PASSWORD]
    redactor = Redactor("sk-key-0000", urls=[url])
    value = {"target": url, "echo": f"the server said {PASSWORD}", f"key {PASSWORD}": ["sk-key-0000", 3]}
    dumped = json.dumps(redactor.value(value))
    assert PASSWORD not in dumped and "sk-key-0000" not in dumped and USER not in dumped
    assert "http://***@127.0.0.1:1/v1" in dumped
    assert url_secrets("http://a:b@h/") == []  # too short to mask outside the URL itself


def test_unreachable_message_redacts_base_url_credentials(closed_port: int, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{closed_port}/v1"
    code = main(["run", "--base-url", url, "--report-dir", str(tmp_path / "r"), "--timeout", "2"])
    assert code == 2
    out = capsys.readouterr()
    assert "unreachable" in out.err
    assert f"http://***@127.0.0.1:{closed_port}/v1" in out.err
    assert PASSWORD not in out.out + out.err


def test_reports_redact_base_url_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFORMANCE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    report_dir = tmp_path / "report"
    with serve_fake(FakeConfig(profile="openai", api_key=None)) as url:
        code = main(["run", "--base-url", _with_userinfo(url), "--profile", "openai", "--only", "models",
                     "--report-dir", str(report_dir), "--timeout", "5", "--max-examples", "2"])
    assert code == 0
    out = capsys.readouterr()
    data = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    assert data["target"]["base_url"].startswith("http://***@127.0.0.1:")
    urls = [x["request"]["url"] for r in data["requirements"] for e in r["evidence"] for x in e["exchanges"]]
    assert urls and all(u.startswith("http://***@127.0.0.1:") for u in urls)
    files = _files_text(report_dir)
    assert len(list(report_dir.rglob("*"))) > 1
    assert PASSWORD not in files + out.out + out.err
    assert f"{USER}:" not in files + out.out + out.err
