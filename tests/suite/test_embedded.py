"""EmbeddedServer against the real reference server (slow: may build the tiny model)."""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from conformance.embedded import EmbeddedServer, EmbeddedServerError, embedded_or_external

pytestmark = pytest.mark.slow


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


HAS_SERVER = _has("reference_server.cli") and _has("reference_server.model.loader")


@pytest.mark.skipif(not HAS_SERVER, reason="the reference server is not complete yet")
def test_start_and_stop():
    server = EmbeddedServer("fireworks", api_key="sk-embedded-test")
    with server as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        models = httpx.get(base_url + "/models", headers={"Authorization": "Bearer sk-embedded-test"}, timeout=30)
        assert models.status_code == 200 and models.json()["data"]
        process = server.process
    assert process is not None and process.poll() is not None


def test_failed_start_reports_log(monkeypatch):
    server = EmbeddedServer("fireworks", start_timeout=30)
    monkeypatch.setattr(server, "command", lambda: ["python", "-c", "import sys; print('boom here'); sys.exit(3)"])
    with pytest.raises(EmbeddedServerError) as info:
        server.start()
    assert "status 3" in str(info.value) and "boom here" in str(info.value)


def test_external_base_url(monkeypatch):
    monkeypatch.setenv("CONFORMANCE_BASE_URL", "http://example.invalid:1/v1/")
    with embedded_or_external() as (base_url, embedded):
        assert base_url == "http://example.invalid:1/v1" and embedded is False
