"""Drives a running Switchyard gateway's Anthropic-format ingress (`/v1/messages`) with the
official Anthropic Python SDK.

Run by tests/e2e/messages.rs, which starts the upstreams and the gateway:

  SWITCHYARD_BASE_URL      http://127.0.0.1:PORT (the SDK adds /v1/messages)
  SWITCHYARD_MESSAGES_CASES JSON: {"key": gateway key, "models": [model, ...],
                                   "unknown": model that does not exist}

For each model (one served by an OpenAI-dialect upstream, one by an Anthropic one):
plain, streaming (`.text_stream` and the final message agree), tool use (streamed and
not), then errors as the SDK's typed exceptions. Prints `ok: ...` per check; the first
failure prints `FAIL: ...` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import anthropic

CASES = json.loads(os.environ["SWITCHYARD_MESSAGES_CASES"])
BASE = os.environ["SWITCHYARD_BASE_URL"].rstrip("/")
client = anthropic.Anthropic(base_url=BASE, api_key=CASES["key"], max_retries=0, timeout=30.0)

TOOLS = [
    {"name": "get_weather", "description": "Weather of a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "get_time", "description": "Time in a zone", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
]


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def plain(model: str) -> None:
    m = client.messages.create(model=model, max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "hi"}])
    check(m.type == "message" and m.role == "assistant", f"{model}: {m}")
    text = "".join(b.text for b in m.content if b.type == "text")
    check(text.startswith("Hello from"), f"{model}: text {text!r}")
    check(m.stop_reason == "end_turn", f"{model}: stop_reason {m.stop_reason}")
    check(m.usage.input_tokens > 0 and m.usage.output_tokens > 0, f"{model}: usage {m.usage}")
    ok(f"{model}: messages.create → {text!r}")


def streamed(model: str) -> None:
    with client.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    final_text = "".join(b.text for b in final.content if b.type == "text")
    check(text.startswith("Hello from"), f"{model}: text_stream {text!r}")
    check(text == final_text, f"{model}: text_stream {text!r} vs final {final_text!r}")
    check(final.stop_reason == "end_turn", f"{model}: stop_reason {final.stop_reason}")
    check(final.usage.output_tokens > 0, f"{model}: usage {final.usage}")
    ok(f"{model}: messages.stream → {text!r}, final message agrees")


def tool_use(model: str) -> None:
    ask = [{"role": "user", "content": "weather and time in Paris?"}]
    with client.messages.stream(model=model, max_tokens=200, tools=TOOLS, messages=ask) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    check([u.name for u in uses] == ["get_weather", "get_time"], f"{model}: {final.content}")
    check(uses[0].input == {"city": "Paris"} and uses[1].input == {"tz": "Europe/Paris"}, f"{model}: inputs {uses}")
    check(final.stop_reason == "tool_use", f"{model}: stop_reason {final.stop_reason}")
    ok(f"{model}: streamed tool_use blocks with whole inputs")
    m = client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=ask)
    check([b.name for b in m.content if b.type == "tool_use"] == ["get_weather", "get_time"], f"{model}: {m.content}")
    answer = client.messages.create(
        model=model,
        max_tokens=200,
        tools=TOOLS,
        messages=ask
        + [
            {"role": "assistant", "content": [b.model_dump(include={"type", "id", "name", "input"}) for b in uses]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "21 C"},
                {"type": "tool_result", "tool_use_id": uses[1].id, "content": "14:00"},
            ]},
        ],
    )
    text = "".join(b.text for b in answer.content if b.type == "text")
    check(text.startswith("Hello from"), f"{model}: after tool results {answer}")
    ok(f"{model}: tool_result round trip")


def errors() -> None:
    try:
        client.messages.create(model=CASES["unknown"], max_tokens=10, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("unknown model: no error")
    except anthropic.NotFoundError as e:
        check(e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error", f"body {e.body}")
        ok(f"unknown model → NotFoundError {e.body['error']['message']!r}")
    bad = anthropic.Anthropic(base_url=BASE, api_key="wrong-key", max_retries=0)
    try:
        bad.messages.create(model=CASES["models"][0], max_tokens=10, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("wrong key: no error")
    except anthropic.AuthenticationError as e:
        check(e.body["error"]["type"] == "authentication_error", f"body {e.body}")
        ok("wrong key → AuthenticationError")
    try:
        client.messages.create(model=CASES["models"][0], max_tokens="many", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("bad max_tokens: no error")
    except anthropic.BadRequestError as e:
        check(e.body["error"]["type"] == "invalid_request_error", f"body {e.body}")
        ok(f"bad request → BadRequestError {e.body['error']['message']!r}")


def main() -> int:
    steps = []
    for model in CASES["models"]:
        steps += [lambda m=model: plain(m), lambda m=model: streamed(m), lambda m=model: tool_use(m)]
    steps.append(errors)
    for step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - report any failure with its trace
            traceback.print_exc()
            print(f"FAIL: {e}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
