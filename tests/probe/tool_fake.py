"""A fake endpoint whose chat template renders tool definitions (tests/fakes/server.py's renders none).

`tools` always reach the prompt (usage.prompt_tokens grows by their token count); `functions` reach
it only where the profile says `params.functions: supported`, so an endpoint that accepts and drops
functions (`ignored`) is visible from outside, as on a real model whose template renders tools::

    with serve_tool_fake(FakeConfig(profile={**openai, "params.functions": "ignored"})) as url:
        ...
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fakes.server import FakeApp, FakeConfig, serve_fake, tokenize


class ToolRenderingFakeApp(FakeApp):
    def _plan(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        plan = super()._plan(body, chat)
        if chat:
            rendered: list[Any] = list(body.get("tools") or [])
            if self.behaviour["params.functions"] == "supported":
                rendered += [{"type": "function", "function": f} for f in body.get("functions") or []]
            if rendered:
                plan["prompt_counts"] = [plan["prompt_counts"][0] + len(tokenize(json.dumps(rendered)))]
        return plan


def serve_tool_fake(config: FakeConfig) -> contextlib.AbstractContextManager[str]:
    """fakes.server.serve_fake for ToolRenderingFakeApp; yields the API base URL."""
    return serve_fake(config, app_class=ToolRenderingFakeApp)
