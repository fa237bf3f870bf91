"""Drives a running Switchyard gateway with the official OpenAI Python SDK, against models
served by upstreams in other wire formats (Anthropic, Gemini, Ollama native).

Run by tests/e2e/dialects_sdk.rs, which starts the native mock upstreams and the gateway:

  SWITCHYARD_BASE_URL     http://127.0.0.1:PORT (no /v1)
  SWITCHYARD_DIALECT_CASES JSON: {"chat": [model, ...]  # each answers "Hello from <dialect>"
                                 "tools": [model, ...]  # each streams two parallel calls
                                 "auth_error": model, "bad_request": model,
                                 "rate_limited": model, "failover": model}

Every check prints `ok: ...`; the first failing one prints `FAIL: ...` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import openai
from openai import OpenAI

CASES = json.loads(os.environ["SWITCHYARD_DIALECT_CASES"])
BASE = os.environ["SWITCHYARD_BASE_URL"].rstrip("/") + "/v1"
client = OpenAI(base_url=BASE, api_key="test", max_retries=0, timeout=30.0)

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def plain(model: str) -> None:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    text = r.choices[0].message.content
    check(text is not None and text.startswith("Hello from"), f"{model}: content {text!r}")
    check(r.choices[0].finish_reason == "stop", f"{model}: finish {r.choices[0].finish_reason}")
    check(r.usage is not None and r.usage.prompt_tokens > 0, f"{model}: usage {r.usage}")
    ok(f"{model}: chat.completions.create → {text!r}")


def streamed(model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    check(text.startswith("Hello from"), f"{model}: streamed text {text!r}")
    check(finish == "stop", f"{model}: finish {finish}")
    check(usage is not None and usage.completion_tokens > 0, f"{model}: usage {usage}")
    ok(f"{model}: stream via the SDK iterator → {text!r}, usage {usage.prompt_tokens}/{usage.completion_tokens}")


def tools(model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "weather and time in Paris?"}],
        tools=TOOLS,
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["args"] += tc.function.arguments
    check(sorted(calls) == [0, 1], f"{model}: tool-call indexes {sorted(calls)}")
    check([calls[0]["name"], calls[1]["name"]] == ["get_weather", "get_time"], f"{model}: names {calls}")
    check(calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"], f"{model}: ids {calls}")
    check(json.loads(calls[0]["args"]) == {"city": "Paris"}, f"{model}: args {calls[0]['args']!r}")
    check(json.loads(calls[1]["args"]) == {"tz": "Europe/Paris"}, f"{model}: args {calls[1]['args']!r}")
    check(finish == "tool_calls", f"{model}: finish {finish}")
    ok(f"{model}: two parallel tool calls streamed, arguments whole")

    # Tool results go back in the next turn, as the SDK user would send them.
    r = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "weather and time in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": calls[i]["id"], "type": "function", "function": {"name": calls[i]["name"], "arguments": calls[i]["args"]}}
                for i in (0, 1)]},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "{\"temp\": 21}"},
            {"role": "tool", "tool_call_id": calls[1]["id"], "content": "14:00"},
        ],
        tools=TOOLS,
    )
    check(r.choices[0].message.content.startswith("Hello from"), f"{model}: answer after tool results")
    ok(f"{model}: tool results sent back")


def errors() -> None:
    for key, exc in (("auth_error", openai.AuthenticationError), ("bad_request", openai.BadRequestError), ("rate_limited", openai.RateLimitError)):
        model = CASES[key]
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        except exc as e:
            check(isinstance(e.body, dict) and e.body.get("message"), f"{model}: error body {e.body}")
            ok(f"{model}: {exc.__name__} ({e.status_code}): {e.body.get('message')!r}")
            continue
        raise AssertionError(f"{model}: no {exc.__name__}")


def failover() -> None:
    model = CASES["failover"]
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    check(r.choices[0].message.content.startswith("Hello from"), f"{model}: {r}")
    ok(f"{model}: failed over across dialects → {r.choices[0].message.content!r}")


def main() -> int:
    steps = [lambda m=m: plain(m) for m in CASES["chat"]]
    steps += [lambda m=m: streamed(m) for m in CASES["chat"]]
    steps += [lambda m=m: tools(m) for m in CASES["tools"]]
    steps += [errors, failover]
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
