"""Every requirement's source quote is verbatim text of the source it cites.

Quotes are compared after collapsing every run of whitespace to one space, in the quote and in the source, so a
quote may span YAML line folding or a wrapped line; nothing else is forgiven (markdown links, punctuation and YAML
keys must appear as in the file). The sources are local copies that CI does not have (it clones the repository
alone), so each check skips, saying so, when its file is absent.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from conformance.catalogue import Requirement, load_catalogue

SHARED = Path("/work/shared")
OPENAPI = SHARED / "openai-openapi" / "openapi.yaml"
SEED_DIR = SHARED / "seed"
SEED_SCHEME = "seed:"
# A url citing OpenAI's OpenAPI description: `openapi:Component`, the openai/openai-openapi repository, or the API
# reference that the description is published as.
OPENAPI_MARKERS = ("openai/openai-openapi", "platform.openai.com/docs/api-reference")


def _normalize(text: str) -> str:
    return " ".join(text.split())


@functools.cache
def _source_text(path: Path) -> str:
    return _normalize(path.read_text(encoding="utf-8"))


def cites_openapi(url: str) -> bool:
    return url.startswith("openapi:") or any(marker in url for marker in OPENAPI_MARKERS)


def _cited(predicate) -> list[Requirement]:
    return [req for req in load_catalogue().values() if predicate(req.source.url)]


def _missing_quotes(requirements: list[Requirement], source_for) -> list[str]:
    return [
        f"{req.id}: {req.source.quote!r} is not in {source_for(req).name}"
        for req in requirements
        if _normalize(req.source.quote) not in _source_text(source_for(req))
    ]


def test_openapi_quotes_are_verbatim() -> None:
    cited = _cited(cites_openapi)
    assert cited, "no requirement cites the OpenAPI description"
    if not OPENAPI.is_file():
        pytest.skip(f"{OPENAPI} is absent (CI clones the repository alone); OpenAPI quotes not checked")
    assert _missing_quotes(cited, lambda req: OPENAPI) == []


def test_seed_quotes_are_verbatim() -> None:
    cited = _cited(lambda url: url.startswith(SEED_SCHEME))
    assert cited, "no requirement cites the seed"
    paths = {SEED_DIR / req.source.url.removeprefix(SEED_SCHEME) for req in cited}
    absent = sorted(str(p) for p in paths if not p.is_file())
    if absent:
        pytest.skip(f"{', '.join(absent)} absent (CI clones the repository alone); seed quotes not checked")
    assert _missing_quotes(cited, lambda req: SEED_DIR / req.source.url.removeprefix(SEED_SCHEME)) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/openai/openai-openapi/blob/master/openapi.yaml#ErrorResponse", True),
        ("openapi:CompletionUsage", True),
        ("https://platform.openai.com/docs/api-reference/completions/create", True),
        ("seed:fireworks-openai-compatibility.txt", False),
        ("https://github.com/openai/openai-python/blob/main/README.md#handling-errors", False),
    ],
)
def test_cites_openapi(url: str, expected: bool) -> None:
    assert cites_openapi(url) is expected


def test_normalization_forgives_only_whitespace() -> None:
    source = _normalize("description: >\n  The maximum number of [tokens](/tokenizer)\n  that can be generated.")
    assert _normalize("The maximum number of [tokens](/tokenizer) that can  be generated.") in source
    assert _normalize("The maximum number of tokens that can be generated.") not in source
