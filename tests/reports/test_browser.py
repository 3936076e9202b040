"""What a person sees: the HTML report and the matrix rendered by a real headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.results import Status
from reports import write_run_outputs
from reports.browser import chromium_path, dump_dom, screenshot
from reports.matrix import write_matrix

from .conftest import make_report

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="Debian chromium is not installed (/usr/bin/chromium); apt-get install chromium"
)


def visible_text(dom: str) -> str:
    """Text of the rendered DOM without tags (what is on the page, entities decoded)."""
    import html

    body = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_report_html_in_browser(tmp_path: Path) -> None:
    paths = write_run_outputs(make_report(), tmp_path / "run")
    dom = dump_dom(paths["html"])
    text = visible_text(dom)
    assert "schema.choice_index" in text
    assert "choices[1].index is 0; expected 1" in text  # the observed message
    assert "EVIDENCE-TEXT-first" in text  # the response body of the failing exchange
    assert "<script>alert('owned')</script>" in text  # shown as text ...
    assert "<script>alert" not in dom  # ... never as an element
    png = screenshot(paths["html"], tmp_path / "report.png")
    assert png.stat().st_size > 10_000


def test_matrix_html_in_browser(tmp_path: Path) -> None:
    reports = [
        make_report(),
        make_report({"stop.included": Status.FAIL, "stop.excluded": Status.PASS, "schema.choice_index": Status.PASS,
                     "stream.done_marker": Status.PASS, "usage.total": Status.PASS},
                    profile="openai", base_url="https://api.openai.com/v1", model="gpt-4o-mini"),
        make_report({"stream.done_marker": Status.PASS, "usage.total": Status.PASS},
                    base_url="https://api.fireworks.ai/inference/v1", model="llama-v3p1-8b"),
    ]
    paths = write_matrix(reports, tmp_path / "matrix")
    text = visible_text(dump_dom(paths["html"]))
    for rep in reports:
        for r in rep.requirements:
            assert r.id in text
    assert "api.openai.com" in text and "gpt-4o-mini" in text and "llama-v3p1-8b" in text
    # follow a failing cell's link: the run's report shows the failure and its evidence
    run = next((tmp_path / "matrix" / "runs").glob("01-*/report.html"))
    run_text = visible_text(dump_dom(run))
    assert "schema.choice_index" in run_text and "EVIDENCE-TEXT-first" in run_text
    png = screenshot(paths["html"], tmp_path / "matrix.png", width=1280, height=900)
    assert png.stat().st_size > 10_000
