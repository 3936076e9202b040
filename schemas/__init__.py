"""JSON Schemas (draft 2020-12) for the OpenAI shapes and the suite's own report."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
