// Streamed token usage read through the official `openai` npm package, the way the seed shows it:
//   "In TypeScript SDK, you need to cast away the typing, e.g.
//    for await (const chunk of await ...) { console.log((chunk as any).usage); }"
// (in plain JavaScript the cast is just a property access).
//
// Run by conformance/scenarios/sdk.py from the cache directory holding node_modules/openai.
// Input (environment only; the key is never on the command line):
//   CONFORMANCE_SDK_BASE_URL, CONFORMANCE_SDK_API_KEY, CONFORMANCE_SDK_MODEL, CONFORMANCE_SDK_CHAT_MODEL,
//   CONFORMANCE_SDK_TIMEOUT (seconds), CONFORMANCE_SDK_STREAM_USAGE (final_chunk | include_usage)
// Output: one JSON object on stdout:
//   {"client": "openai-node", "version": "...", "results": {"chat": R, "completions": R}}
//   R = {"chunks": [{"finish": bool, "choices": int, "usage": any}], "text": str, "error": str|null}

import OpenAI from "openai";
import { createRequire } from "node:module";

const env = process.env;
const require = createRequire(import.meta.url);
let version = "unknown";
try {
  version = require("openai/package.json").version;
} catch {
  // older packages do not export package.json
}

const client = new OpenAI({
  baseURL: env.CONFORMANCE_SDK_BASE_URL,
  apiKey: env.CONFORMANCE_SDK_API_KEY || "no-key-given",
  maxRetries: 0,
  timeout: Math.round(parseFloat(env.CONFORMANCE_SDK_TIMEOUT || "60") * 1000),
});
const includeUsage = env.CONFORMANCE_SDK_STREAM_USAGE === "include_usage";
const model = env.CONFORMANCE_SDK_MODEL;
const chatModel = env.CONFORMANCE_SDK_CHAT_MODEL || model;

async function collect(make, pick) {
  const out = { chunks: [], text: "", error: null };
  try {
    const stream = await make();
    for await (const chunk of stream) {
      const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
      out.chunks.push({
        finish: choices.some((c) => c && c.finish_reason != null),
        choices: choices.length,
        usage: chunk.usage === undefined ? null : chunk.usage, // (chunk as any).usage
      });
      for (const c of choices) out.text += pick(c) || "";
    }
  } catch (err) {
    out.error = `${err && err.constructor ? err.constructor.name : "Error"}: ${err && err.message ? err.message : err}`;
  }
  return out;
}

const extra = includeUsage ? { stream_options: { include_usage: true } } : {};
const results = {};
results.chat = await collect(
  () =>
    client.chat.completions.create({
      model: chatModel,
      messages: [
        { role: "system", content: "You are a helpful assistant." },
        { role: "user", content: "Say this is a test" },
      ],
      max_tokens: 16,
      temperature: 0,
      stream: true,
      ...extra,
    }),
  (c) => (c.delta ? c.delta.content : ""),
);
results.completions = await collect(
  () =>
    client.completions.create({
      model,
      prompt: "The quick brown fox",
      max_tokens: 16,
      temperature: 0,
      stream: true,
      ...extra,
    }),
  (c) => c.text,
);
process.stdout.write(JSON.stringify({ client: "openai-node", version, results }) + "\n");
