"""What a person sees: the HTML report and the matrix rendered by a real headless Chromium.

Text counts as seen only when it is rendered (`reports.browser.visible_text`): the content of a
closed <details>, or of anything under display:none, does not.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from conformance.results import Status
from reports import write_run_outputs
from reports.browser import BrowserError, chromium_path, dump_dom, screenshot, visible_text
from reports.common import anchor
from reports.matrix import write_matrix

from .conftest import make_report

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="Debian chromium is not installed (no /usr/bin/chromium, $CHROMIUM unset): apt-get install chromium",
)

FAILURE_ID = "schema.choice_index"
FAILURE_MESSAGE = "choices[1].index is 0; expected 1"
FAILURE_EVIDENCE = "EVIDENCE-TEXT-first"  # in the response body of the failing exchange
PASS_EVIDENCE = '"ok": true'  # response body of passing exchanges: rendered inside closed <details>


class CellLinks(HTMLParser):
    """The hrefs of the cells (td.cell > a) in the matrix row whose id is `row_id`, in column order."""

    def __init__(self, row_id: str) -> None:
        super().__init__()
        self.row_id = row_id
        self.in_row = False
        self.in_cell = False
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr":
            self.in_row = a.get("id") == self.row_id
        elif tag == "td" and self.in_row:
            self.in_cell = "cell" in (a.get("class") or "").split()
        elif tag == "a" and self.in_row and self.in_cell and a.get("href"):
            self.hrefs.append(str(a["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.in_cell = False
        elif tag == "tr":
            self.in_row = False


def cell_links(matrix_html: str, requirement_id: str) -> list[str]:
    parser = CellLinks(anchor(requirement_id))
    parser.feed(matrix_html)
    return parser.hrefs


def test_visible_text_leaves_out_closed_details_and_hidden(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html><html><head><style>.gone{display:none}</style><script>var s='SCRIPT-TEXT'</script></head>"
        "<body><p>SHOWN</p><details><summary>CLOSED-SUMMARY</summary><pre>CLOSED-BODY</pre></details>"
        "<details open><summary>OPEN-SUMMARY</summary><pre>OPEN-BODY</pre>"
        "<details><summary>NESTED-SUMMARY</summary>NESTED-BODY</details></details>"
        "<div class='gone'>NONE-TEXT</div><div style='visibility:hidden'>HIDDEN-TEXT</div>"
        "<section id='target'><h2>IN-TARGET</h2></section></body></html>",
        encoding="utf-8",
    )
    text = visible_text(page)
    for shown in ("SHOWN", "CLOSED-SUMMARY", "OPEN-SUMMARY", "OPEN-BODY", "NESTED-SUMMARY", "IN-TARGET"):
        assert shown in text
    for hidden in ("CLOSED-BODY", "NESTED-BODY", "NONE-TEXT", "HIDDEN-TEXT", "SCRIPT-TEXT"):
        assert hidden not in text
    assert "CLOSED-BODY" in dump_dom(page)  # in the DOM, just not rendered
    assert visible_text(page.as_uri() + "#target", within_anchor=True).split() == ["IN-TARGET"]
    with pytest.raises(BrowserError, match="no element with id"):
        visible_text(page.as_uri() + "#missing", within_anchor=True)


def test_report_html_in_browser(tmp_path: Path) -> None:
    paths = write_run_outputs(make_report(), tmp_path / "run")
    dom = dump_dom(paths["html"])
    text = visible_text(paths["html"])
    assert FAILURE_ID in text
    assert FAILURE_MESSAGE in text  # the observed message
    assert FAILURE_EVIDENCE in text  # the failing exchange's response body: its <details> is open
    assert "<script>alert('owned')</script>" in text  # shown as text ...
    assert "<script>alert" not in dom  # ... never as an element
    assert PASS_EVIDENCE in dump_dom(paths["html"]) and PASS_EVIDENCE not in text  # passes: collapsed
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
    matrix_dom = dump_dom(paths["html"])
    text = visible_text(paths["html"])
    for rep in reports:
        for r in rep.requirements:
            assert r.id in text
    assert "api.openai.com" in text and "gpt-4o-mini" in text and "llama-v3p1-8b" in text

    # follow the failing cell's link (first column) as a person would: the href in the rendered matrix
    links = cell_links(matrix_dom, FAILURE_ID)
    assert len(links) == len(reports)
    target = urljoin(paths["html"].resolve().as_uri(), links[0])
    parts = urlsplit(target)
    assert parts.scheme == "file" and parts.fragment == anchor(FAILURE_ID)
    assert Path(unquote(parts.path)).is_file()
    landed = visible_text(target, within_anchor=True)  # the element the link lands on, as rendered
    assert FAILURE_ID in landed
    assert FAILURE_MESSAGE in landed
    assert FAILURE_EVIDENCE in landed
    assert PASS_EVIDENCE not in visible_text(target)

    png = screenshot(paths["html"], tmp_path / "matrix.png", width=1280, height=900)
    assert png.stat().st_size > 10_000
