"""Conformance suite for OpenAI-compatible HTTP endpoints."""

__version__ = "0.1.0"
