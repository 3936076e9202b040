"""docs/make_transcripts.py still records every documented difference from the reference server.

The generator checks each difference while it records (and raises TranscriptError if the server
does not show it); here it runs against the session's servers. The exact text of
docs/transcripts.md is not compared: the tiny model's greedy output may differ across torch builds.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from fakes.server import PLANTED_KEY

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "make_transcripts.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_transcripts", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_transcripts", module)
    spec.loader.exec_module(module)
    return module


def test_transcripts_record_every_difference(fireworks_server: str, openai_server: str) -> None:
    text = _load().record({"fireworks": fireworks_server, "openai": openai_server}, api_key=PLANTED_KEY)
    for heading in ("## (a) Stop sequences", "## (b) `max_tokens` beyond the context window",
                    "## (c) Streaming usage", "## (d) Unsupported options"):
        assert heading in text
    assert "context_length_exceeded" in text and '"param": "presence_penalty"' in text
    assert '"choices":[]' in text and "data: [DONE]" in text
    # volatile parts are stable placeholders; no key
    assert not re.search(r"cmpl-[0-9a-f]{32}", text)
    assert PLANTED_KEY not in text
    committed = (SCRIPT.parent / "transcripts.md").read_text(encoding="utf-8")
    assert [line for line in text.splitlines() if line.startswith("#")] == \
        [line for line in committed.splitlines() if line.startswith("#")]
