"""In-process fake OpenAI-compatible endpoints for the suite's own tests (see fakes.server)."""
