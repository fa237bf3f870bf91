"""The OpenAI Python SDK's Responses API against models whose upstreams have no
Responses API (an OpenAI-format upstream marked `responses: false`, an Anthropic one):
the gateway serves them through chat completions. Run by tests/e2e/surface.rs with
SWITCHYARD_BASE_URL and SWITCHYARD_RESPONSES_MODELS (JSON list). Prints `ok: ...`;
`FAIL: ...` and exit 1 on the first failure."""

from __future__ import annotations

import json
import os
import sys
import traceback

from openai import OpenAI

BASE = os.environ["SWITCHYARD_BASE_URL"].rstrip("/") + "/v1"
MODELS = json.loads(os.environ["SWITCHYARD_RESPONSES_MODELS"])
client = OpenAI(base_url=BASE, api_key="test", max_retries=0, timeout=30.0)
TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def main() -> int:
    try:
        for model in MODELS:
            r = client.responses.create(model=model, instructions="Be brief.", input="hi")
            check(r.output_text.startswith("Hello from"), f"{model}: {r}")
            check(r.status == "completed" and r.usage.output_tokens > 0, f"{model}: {r}")
            print(f"ok: {model}: responses.create → {r.output_text!r}", flush=True)

            with client.responses.stream(model=model, input="hi") as stream:
                deltas = "".join(ev.delta for ev in stream if ev.type == "response.output_text.delta")
                final = stream.get_final_response()
            check(deltas.startswith("Hello from") and final.output_text == deltas, f"{model}: {deltas!r} / {final.output_text!r}")
            print(f"ok: {model}: responses.stream, the SDK's accumulator agrees", flush=True)

            with client.responses.stream(model=model, input="weather and time in Paris?", tools=TOOLS) as stream:
                final = stream.get_final_response()
            calls = [o for o in final.output if o.type == "function_call"]
            check([c.name for c in calls] == ["get_weather", "get_time"], f"{model}: {final.output}")
            check(json.loads(calls[0].arguments) == {"city": "Paris"}, f"{model}: {calls[0].arguments!r}")
            print(f"ok: {model}: two function calls streamed", flush=True)

            follow = client.responses.create(
                model=model,
                tools=TOOLS,
                input=[{"role": "user", "content": "weather and time in Paris?"}]
                + [{"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls]
                + [{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in calls],
            )
            check(follow.output_text.startswith("Hello from"), f"{model}: {follow}")
            print(f"ok: {model}: function_call_output round trip", flush=True)
    except Exception as e:  # noqa: BLE001 - report any failure with its trace
        traceback.print_exc()
        print(f"FAIL: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
