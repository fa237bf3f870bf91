"""Checks with the official OpenAI Python SDK that a streamed response-cache hit is an
ordinary stream to a client.

Run by the Rust e2e test in tests/e2e/cache.rs, which starts a mock upstream and the
gateway (with `cache:` on), then passes:

  SWITCHYARD_BASE_URL     http://127.0.0.1:PORT (no /v1)
  SWITCHYARD_METRICS_URL  http://127.0.0.1:PORT/metrics (to wait until the first answer
                          is stored: it is kept once its body has ended)
  SWITCHYARD_CACHE_MODEL  the model to ask (cached by the gateway's `cache.models`)

A non-streamed `chat.completions.create(temperature=0)` (a miss), then the same request
with `stream=True, stream_options={"include_usage": True}` through `with_raw_response`:
its `x-switchyard-cache` header must be `hit`, and the SDK's own stream parser must give
the first answer's text, a finish_reason and a usage chunk.

Every check prints `ok: ...`; the first failing one prints `FAIL: ...` and exits 1.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import urllib.request

import openai
from openai import OpenAI

BASE = os.environ["SWITCHYARD_BASE_URL"].rstrip("/") + "/v1"
METRICS = os.environ["SWITCHYARD_METRICS_URL"]
MODEL = os.environ["SWITCHYARD_CACHE_MODEL"]
MESSAGES = [{"role": "user", "content": "What does the cache say?"}]
STORED = 'switchyard_cache_stores_total{outcome="stored"} 1'

client = OpenAI(base_url=BASE, api_key="test", max_retries=0, timeout=30.0)


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


def wait_stored(timeout: float = 10.0) -> None:
    """Polls the gateway's metrics until one answer is stored, or fails at the deadline."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(METRICS, timeout=5) as resp:
            text = resp.read().decode()
        if STORED in text.splitlines():
            return
        time.sleep(0.05)
    raise AssertionError(f"no `{STORED}` within {timeout}s; last scrape:\n{text}")


def check() -> None:
    first_raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, temperature=0
    )
    assert first_raw.headers.get("x-switchyard-cache") == "miss", (
        f"first request: x-switchyard-cache={first_raw.headers.get('x-switchyard-cache')!r}, "
        "expected 'miss'"
    )
    first = first_raw.parse()
    text = first.choices[0].message.content
    assert text, f"first answer has no text: {first}"
    ok(f"non-streamed miss: {text!r}")

    wait_stored()
    ok("the first answer is stored")

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    header = raw.headers.get("x-switchyard-cache")
    assert header == "hit", f"streamed request: x-switchyard-cache={header!r}, expected 'hit'"
    assert raw.headers.get("content-type", "").startswith("text/event-stream"), (
        f"streamed hit content-type {raw.headers.get('content-type')!r}"
    )
    ok("streamed request is a hit")

    stream = raw.parse()
    assert isinstance(stream, openai.Stream), f"parse() gave {type(stream).__name__}, not a Stream"
    pieces: list[str] = []
    finish_reason = None
    usage = None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk", f"chunk object {chunk.object!r}"
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish_reason = choice.finish_reason
        if chunk.usage is not None:
            assert not chunk.choices, f"usage on a chunk with choices: {chunk}"
            usage = chunk.usage
    assembled = "".join(pieces)
    assert assembled == text, f"streamed hit text {assembled!r} != first answer {text!r}"
    ok(f"assembled text equals the first answer ({len(pieces)} content chunks)")
    assert finish_reason == first.choices[0].finish_reason, (
        f"finish_reason {finish_reason!r}, first answer had {first.choices[0].finish_reason!r}"
    )
    ok(f"finish_reason {finish_reason!r}")
    assert usage is not None, "no usage chunk although include_usage was asked"
    assert usage.prompt_tokens == first.usage.prompt_tokens, f"{usage} vs {first.usage}"
    assert usage.completion_tokens == first.usage.completion_tokens, f"{usage} vs {first.usage}"
    assert usage.total_tokens == first.usage.total_tokens, f"{usage} vs {first.usage}"
    ok(f"usage chunk: {usage.prompt_tokens}+{usage.completion_tokens}={usage.total_tokens}")


def main() -> int:
    print(f"openai {openai.__version__} against {BASE}", flush=True)
    try:
        check()
    except AssertionError as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    except Exception as e:  # an SDK call raised where none was expected
        traceback.print_exc()
        print(f"FAIL: unexpected {type(e).__name__}: {e}", flush=True)
        return 1
    print("all cache checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
