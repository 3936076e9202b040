"""Spec documentation generated from the suite's own sources, so the spec and the suite never drift.

`conformance docs [--out DIR] [--format md|html|all] [--print]` renders

- the requirement catalogue (`conformance/requirements/*.yaml`) grouped by area: id, level,
  statement, source quote and link, what each built-in profile expects (via
  `Requirement.applies_to` and the profile's overrides), and the tests that cover it (from
  `conformance.manifest.load_manifest()` when available);
- the JSON Schemas (`schemas/*.json`): title, description and a field table (path, type,
  required, nullable, constraints);

into `DIR/index.md` + `DIR/schemas.md` and `DIR/index.html` (both parts, one static page).
`--print` also lists every requirement (id, level, statement, source quote, tests) on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance.catalogue import REQUIREMENTS_DIR, Requirement, load_catalogue
from conformance.profiles import Profile, builtin_profiles, load_profile
from reports.common import anchor, area_rank, md_cell, md_inline, render_html, source_href

DEFAULT_OUT = Path("reports") / "latest" / "spec"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
MAX_DEPTH = 6


# --- catalogue -----------------------------------------------------------------------------------

@dataclass
class ProfileExpectation:
    profile: str
    applies: bool
    note: str = ""  # why not, or the override's reason

    @property
    def label(self) -> str:
        return "applies" if self.applies else "n/a"


@dataclass
class RequirementDoc:
    req: Requirement
    profiles: list[ProfileExpectation]
    tests: list[str]

    @property
    def id(self) -> str:
        return self.req.id


@dataclass
class AreaDoc:
    area: str
    title: str
    requirements: list[RequirementDoc] = field(default_factory=list)


def load_tests_by_requirement() -> dict[str, list[str]]:
    """`conformance.manifest.load_manifest()`, or {} while the manifest is not available."""
    try:
        from conformance.manifest import load_manifest  # type: ignore[import-not-found,unused-ignore]

        manifest = load_manifest()
    except Exception:  # noqa: BLE001 - optional input: missing module or file means "no tests known"
        return {}
    return {str(k): [str(t) for t in (v or [])] for k, v in dict(manifest).items()}


def _area_titles(directory: Path) -> dict[str, str]:
    titles = {}
    for path in directory.glob("*.yaml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("title"):
            titles[path.stem] = str(data["title"])
    return titles


def profile_expectation(req: Requirement, profile: Profile) -> ProfileExpectation:
    override = profile.overrides.get(req.id)
    if override:
        status = str(override.get("status", "not_applicable"))
        reason = str(override.get("reason", ""))
        return ProfileExpectation(profile.id, status not in ("not_applicable", "skip"), f"override: {status} {reason}".strip())
    ok, why = req.applies_to(profile.behaviour)
    return ProfileExpectation(profile.id, ok, why)


def catalogue_docs(
    catalogue_dir: Path = REQUIREMENTS_DIR,
    profiles: list[Profile] | None = None,
    tests: dict[str, list[str]] | None = None,
) -> list[AreaDoc]:
    catalogue = load_catalogue(Path(catalogue_dir))
    profiles = profiles if profiles is not None else [load_profile(p) for p in builtin_profiles()]
    tests = tests if tests is not None else load_tests_by_requirement()
    titles = _area_titles(Path(catalogue_dir))
    areas: dict[str, AreaDoc] = {}
    for req in catalogue.values():
        doc = areas.setdefault(req.area, AreaDoc(req.area, titles.get(req.area, req.area)))
        doc.requirements.append(
            RequirementDoc(req, [profile_expectation(req, p) for p in profiles], sorted(tests.get(req.id, [])))
        )
    return [areas[a] for a in sorted(areas, key=lambda a: (area_rank(a), a))]


# --- schemas -------------------------------------------------------------------------------------

@dataclass
class FieldRow:
    path: str
    type: str
    required: bool
    nullable: bool
    notes: str = ""
    ref: str | None = None  # another schema this field is documented by


@dataclass
class SchemaDoc:
    name: str
    title: str
    description: str
    id: str
    fields: list[FieldRow]


def _load_doc(directory: Path, filename: str, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    key = str((directory / filename).resolve())
    if key not in cache:
        cache[key] = json.loads((directory / filename).read_text(encoding="utf-8"))
    return cache[key]


class _Walker:
    def __init__(self, directory: Path, root_file: str) -> None:
        self.directory = directory
        self.cache: dict[str, dict[str, Any]] = {}
        self.root_file = root_file

    def resolve(self, node: Any, current: str) -> tuple[dict[str, Any], str, str | None]:
        """Follow `$ref`s; returns (node, file it lives in, name of a whole other schema or None)."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = str(node["$ref"])
            if ref in seen:
                break
            seen.add(ref)
            target, _, pointer = ref.partition("#")
            filename = current
            if target:
                filename = str((Path(current).parent / target).as_posix())
                if not pointer:  # a whole other schema: link to it instead of inlining it
                    name = Path(target).name.removesuffix(".json")
                    return _load_doc(self.directory, filename, self.cache), filename, name
            doc = _load_doc(self.directory, filename, self.cache)
            part: Any = doc
            for token in [t for t in pointer.split("/") if t]:
                part = part.get(token.replace("~1", "/").replace("~0", "~"), {}) if isinstance(part, dict) else {}
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**part, **extra} if isinstance(part, dict) else part
            current = filename
        return (node if isinstance(node, dict) else {}), current, None

    def describe(self, node: dict[str, Any], current: str) -> tuple[str, bool, list[str]]:
        """(type text, nullable, notes) of a schema node."""
        types: list[str] = []
        nullable = False
        notes: list[str] = []
        t = node.get("type")
        for item in t if isinstance(t, list) else ([t] if t else []):
            if item == "null":
                nullable = True
            else:
                types.append(str(item))
        if "const" in node:
            types = types or [json.dumps(node["const"])]
            notes.append(f"always {json.dumps(node['const'])}")
        if "enum" in node:
            values = [v for v in node["enum"] if v is not None]
            nullable = nullable or None in node["enum"]
            if not types:
                names = {bool: "boolean", int: "integer", float: "number", str: "string"}
                types = list(dict.fromkeys(names.get(type(v), "object") for v in values))
            notes.append("one of " + ", ".join(json.dumps(v) for v in values))
        for alt_key in ("anyOf", "oneOf"):
            for alt in node.get(alt_key) or []:
                sub, sub_file, other = self.resolve(alt, current)
                if other:
                    types.append(other)
                    continue
                st, sn, _ = self.describe(sub, sub_file)
                nullable = nullable or sn or sub.get("type") == "null"
                if st and st not in types and st != "null":
                    types.append(st)
        if node.get("type") == "array" or "items" in node:
            items, items_file, other = self.resolve(node.get("items", {}), current)
            inner = other or self.describe(items, items_file)[0] or "any"
            types = [f"array of {inner}" if x == "array" else x for x in types] or [f"array of {inner}"]
        for key, label in (("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
            if key in node:
                notes.append(f"{label} {node[key]}")
        for key in ("minLength", "maxLength", "minItems", "maxItems", "pattern", "format", "default"):
            if key in node:
                notes.append(f"{key} {json.dumps(node[key])}")
        if node.get("description"):
            notes.insert(0, " ".join(str(node["description"]).split()))
        return " | ".join(dict.fromkeys(types)), nullable, notes

    def children(self, node: dict[str, Any], current: str) -> list[tuple[dict[str, Any], str, str]]:
        """Object schemas nested in `node` to document under it: (node, file, path suffix)."""
        out: list[tuple[dict[str, Any], str, str]] = []
        if "properties" in node:
            out.append((node, current, ""))
        if "items" in node:
            items, f, other = self.resolve(node["items"], current)
            if not other:
                out += [(n, ff, "[]" + s) for n, ff, s in self.children(items, f)]
        for alt_key in ("anyOf", "oneOf", "allOf"):
            for alt in node.get(alt_key) or []:
                sub, f, other = self.resolve(alt, current)
                if not other:
                    out += self.children(sub, f)
        return out

    def fields(self, node: dict[str, Any], current: str, prefix: str = "", depth: int = 0) -> list[FieldRow]:
        rows: list[FieldRow] = []
        if depth > MAX_DEPTH:
            return rows
        required = set(node.get("required") or [])
        for name, raw in (node.get("properties") or {}).items():
            path = f"{prefix}.{name}" if prefix else name
            sub, sub_file, other = self.resolve(raw, current)
            if other:
                rows.append(FieldRow(path, other, name in required, False, "", ref=other))
                continue
            typ, nullable, notes = self.describe(sub, sub_file)
            rows.append(FieldRow(path, typ or "any", name in required, nullable, "; ".join(notes)))
            for child, child_file, suffix in self.children(sub, sub_file):
                rows += self.fields(child, child_file, path + suffix, depth + 1)
        seen: set[str] = set()
        return [r for r in rows if not (r.path in seen or seen.add(r.path))]  # type: ignore[func-returns-value]


def schema_docs(directory: Path = SCHEMA_DIR) -> list[SchemaDoc]:
    docs = []
    for path in sorted(directory.glob("*.json")):
        name = path.name.removesuffix(".json")
        walker = _Walker(directory, path.name)
        data = _load_doc(directory, path.name, walker.cache)
        root, root_file, _ = walker.resolve(data, path.name)
        rows = walker.fields(root, root_file)
        if not rows:  # a top-level array or a oneOf of objects
            for child, child_file, suffix in walker.children(root, root_file):
                rows += walker.fields(child, child_file, suffix.lstrip("."))
        docs.append(SchemaDoc(
            name=name,
            title=str(data.get("title") or name),
            description=" ".join(str(data.get("description") or "").split()),
            id=str(data.get("$id") or ""),
            fields=rows,
        ))
    return docs


# --- renderers -----------------------------------------------------------------------------------

def _source_md(url: str) -> str:
    href = source_href(url)
    return f"[{md_inline(url)}]({href})" if href else f"`{url}`"


def render_index_md(areas: list[AreaDoc], profiles: list[str], *, schemas_link: str | None = "schemas.md") -> str:
    total = sum(len(a.requirements) for a in areas)
    lines = [
        "# OpenAI-compatible API conformance: requirements",
        "",
        f"{total} requirements in {len(areas)} areas, generated from `conformance/requirements/*.yaml`. "
        "Levels follow RFC 2119. Each requirement lists what every built-in profile expects and the tests that verify it.",
        "",
    ]
    if schemas_link:
        lines += [f"The JSON Schemas the suite validates payloads against are described in [{schemas_link}]({schemas_link}).", ""]
    lines += ["| Area | Requirements | MUST | SHOULD | MAY |", "|---|---:|---:|---:|---:|"]
    for a in areas:
        n = {lvl: sum(1 for r in a.requirements if r.req.level.value == lvl) for lvl in ("MUST", "SHOULD", "MAY")}
        lines.append(f"| [{md_cell(a.title)}](#{a.area}) | {len(a.requirements)} | {n['MUST']} | {n['SHOULD']} | {n['MAY']} |")
    lines.append("")
    for a in areas:
        lines += [f'<a id="{a.area}"></a>', "", f"## {md_inline(a.title)} (`{a.area}`)", ""]
        for rd in a.requirements:
            r = rd.req
            lines += [
                f'<a id="{anchor(r.id)}"></a>',
                "",
                f"### `{r.id}` — {r.level.value}",
                "",
                md_inline(r.statement),
                "",
                f"> {md_inline(r.source.quote)}",
                ">",
                f"> — {_source_md(r.source.url)}",
                "",
            ]
            if r.applies_when:
                lines.append("Applies when: " + ", ".join(f"`{k}` = {md_inline(v)}" for k, v in r.applies_when.items()) + "  ")
            lines.append("Profiles: " + "; ".join(
                f"**{p.profile}**: {p.label}" + (f" ({md_inline(p.note)})" if p.note and not p.applies else "")
                for p in rd.profiles) + "  ")
            lines.append("Tests: " + (", ".join(f"`{t}`" for t in rd.tests) if rd.tests else "_none recorded_"))
            lines.append("")
    return "\n".join(lines)


def render_schemas_md(schemas: list[SchemaDoc]) -> str:
    lines = ["# JSON Schemas", "", f"{len(schemas)} schemas from `schemas/*.json` (JSON Schema draft 2020-12).", ""]
    lines += [f"- [{md_inline(s.title)}](#schema-{s.name}) — `{s.name}`" for s in schemas]
    lines.append("")
    for s in schemas:
        lines += [f'<a id="schema-{s.name}"></a>', "", f"## {md_inline(s.title)}", "", f"Name `{s.name}`, `$id` `{s.id}`", ""]
        if s.description:
            lines += [md_inline(s.description), ""]
        if s.fields:
            lines += ["| Field | Type | Required | Nullable | Notes |", "|---|---|---|---|---|"]
            for f in s.fields:
                typ = f"[{f.type}](#schema-{f.ref})" if f.ref else md_cell(f.type)
                lines.append(f"| `{md_cell(f.path)}` | {typ} | {'yes' if f.required else ''} | {'yes' if f.nullable else ''} | {md_cell(f.notes)} |")
            lines.append("")
    return "\n".join(lines)


def render_docs_html(areas: list[AreaDoc], schemas: list[SchemaDoc], profiles: list[str]) -> str:
    return render_html("docs.html.j2", areas=areas, schemas=schemas, profiles=profiles,
                       total=sum(len(a.requirements) for a in areas))


def requirement_listing(areas: list[AreaDoc]) -> str:
    """Plain-text list of every requirement: id, level, statement, source quote, tests."""
    lines = []
    for a in areas:
        lines.append(f"== {a.area}: {a.title}")
        for rd in a.requirements:
            r = rd.req
            lines += [
                f"{r.id} [{r.level.value}] {r.statement}",
                f'    source: {r.source.url} "{r.source.quote}"',
                "    profiles: " + ", ".join(f"{p.profile}={p.label}" for p in rd.profiles),
                "    tests: " + (", ".join(rd.tests) if rd.tests else "(none recorded)"),
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_docs(
    out_dir: str | Path = DEFAULT_OUT,
    formats: tuple[str, ...] | list[str] = ("md", "html"),
    *,
    catalogue_dir: str | Path = REQUIREMENTS_DIR,
    schema_dir: str | Path = SCHEMA_DIR,
    profiles: list[Profile] | None = None,
    tests: dict[str, list[str]] | None = None,
) -> list[Path]:
    """Render the catalogue and the schemas; returns the files written.

    md: `index.md` (requirements) and `schemas.md`; html: `index.html` (both parts).
    """
    unknown = set(formats) - {"md", "html"}
    if unknown:
        raise ValueError(f"unknown docs format(s) {sorted(unknown)}; use md and/or html")
    profiles = profiles if profiles is not None else [load_profile(p) for p in builtin_profiles()]
    areas = catalogue_docs(Path(catalogue_dir), profiles, tests)
    schemas = schema_docs(Path(schema_dir))
    names = [p.id for p in profiles]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "md" in formats:
        (out / "index.md").write_text(render_index_md(areas, names), encoding="utf-8")
        (out / "schemas.md").write_text(render_schemas_md(schemas), encoding="utf-8")
        written += [out / "index.md", out / "schemas.md"]
    if "html" in formats:
        (out / "index.html").write_text(render_docs_html(areas, schemas, names), encoding="utf-8")
        written.append(out / "index.html")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`conformance docs [--out DIR] [--format md|html|all] [--print] [--no-write]`."""
    parser.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT), help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--format", choices=("md", "html", "all"), default="all", help="which documents to write (default: all)")
    parser.add_argument("--print", dest="print", action="store_true",
                        help="also list every requirement (id, level, statement, source quote, tests) on stdout")
    parser.add_argument("--no-write", dest="no_write", action="store_true", help="write no files (use with --print)")


def cli(args: argparse.Namespace | list[str] | None = None) -> int:
    """Run `conformance docs`; 0 on success, 2 when the catalogue cannot be loaded.

    Reads from the namespace: `out` (directory, default reports/latest/spec), `format`
    ("md" | "html" | "all", default "all"), `print` (bool), `no_write` (bool); all optional.
    """
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="conformance docs", description=__doc__.splitlines()[0])
        add_arguments(parser)
        args = parser.parse_args(args)
    fmt = getattr(args, "format", None) or "all"
    formats = ("md", "html") if fmt == "all" else (fmt,)
    try:
        if getattr(args, "print", False):
            sys.stdout.write(requirement_listing(catalogue_docs()))
        if not getattr(args, "no_write", False):
            written = write_docs(getattr(args, "out", None) or DEFAULT_OUT, formats)
            print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    except ValueError as exc:  # CatalogueError, ProfileError
        print(f"conformance docs: {exc}", file=sys.stderr)
        return 2
    return 0

