"""Reference implementation of the OpenAI-compatible HTTP API, one behaviour profile at a time."""
