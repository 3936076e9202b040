"""`conformance docs`: every catalogue requirement, what each profile expects, the tests, the schemas."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from conformance.catalogue import REQUIREMENTS_DIR, load_catalogue
from conformance.profiles import load_profile
from conformance.schemas import schema_names
from reports.docs import catalogue_docs, cli, requirement_listing, schema_docs, write_docs

FAKE_AREA = """\
area: stop
title: Stop sequences (fake)
requirements:
  - id: stop.fake_included
    level: MUST
    statement: The returned text MUST keep the <stop> word.
    applies_when: {stop.output: include}
    source: {url: "seed:fake.txt", quote: "the returned string includes the stop word"}
  - id: stop.fake_any
    level: SHOULD
    statement: Stops SHOULD work.
    source: {url: "https://example.com/spec#stop", quote: "stop works | always"}
"""


@pytest.fixture
def fake_catalogue(tmp_path: Path) -> Path:
    d = tmp_path / "requirements"
    d.mkdir()
    (d / "stop.yaml").write_text(FAKE_AREA)
    return d


def test_fake_catalogue_docs(tmp_path: Path, fake_catalogue: Path) -> None:
    profiles = [load_profile("fireworks"), load_profile("openai")]
    tests = {"stop.fake_included": ["stop_basic", "stop_stream"]}
    written = write_docs(tmp_path / "spec", catalogue_dir=fake_catalogue, profiles=profiles, tests=tests)
    assert sorted(p.name for p in written) == ["index.html", "index.md", "schemas.md"]
    md = (tmp_path / "spec" / "index.md").read_text()
    html = (tmp_path / "spec" / "index.html").read_text()
    for text in (md, html):
        assert "stop.fake_included" in text and "stop.fake_any" in text
        assert "stop_basic" in text and "stop_stream" in text
        assert "the returned string includes the stop word" in text
    assert "**fireworks**: applies" in md and "**openai**: n/a (profile has stop.output='exclude'" in md
    assert "&lt;stop&gt;" in html and "<stop>" not in html
    assert '<a href="https://example.com/spec#stop"' in html
    areas = catalogue_docs(fake_catalogue, profiles, tests)
    listing = requirement_listing(areas)
    assert "stop.fake_included [MUST]" in listing and "tests: stop_basic, stop_stream" in listing


def test_real_catalogue_every_requirement_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalogue = load_catalogue(REQUIREMENTS_DIR)
    if not catalogue:
        pytest.skip("the requirement catalogue is empty in this checkout")
    ns = argparse.Namespace(out=str(tmp_path / "spec"), format="all", print=True, no_write=False)
    assert cli(ns) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "spec" / "index.md").read_text()
    html = (tmp_path / "spec" / "index.html").read_text()
    for rid, req in catalogue.items():
        assert f"{rid} [{req.level.value}]" in printed
        assert f"### `{rid}` — {req.level.value}" in md
        assert f'id="req-{rid}"' in html
        assert req.source.url in printed


def test_schema_docs_cover_every_schema() -> None:
    docs = {d.name: d for d in schema_docs()}
    assert set(docs) == set(schema_names())
    fields = {f.path: f for f in docs["chat.completion.chunk"].fields}
    assert fields["choices"].required and fields["choices[].finish_reason"].nullable
    assert fields["usage"].nullable
    assert "choices[].delta.content" in fields
    report_fields = {f.path for f in docs["report.results"].fields}
    assert {"requirements[].evidence[].exchanges[].request.url", "cost.total_tokens"} <= report_fields
