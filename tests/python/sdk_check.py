"""Drives a running Switchyard gateway with the official OpenAI Python SDK.

Run by the Rust e2e test `python_sdk` (tests/e2e/python_sdk.rs), which starts mock
upstreams and the gateway, then passes:

  SWITCHYARD_BASE_URL   http://127.0.0.1:PORT (no /v1)
  SWITCHYARD_SDK_CASES  JSON: which model name triggers which behaviour, e.g.
      {"echo": "sdk-echo",                  # upstream echoes the last user message
       "alias": "sdk-alias",                # a route to the echo upstream
       "stream": "sdk-stream", "stream_pieces": ["Hel", "lo"],
       "builtin": "sdk-builtin",            # served by the gateway's own `mock` dialect
       "drop": "sdk-drop", "drop_pieces": ["a", "b"],   # pieces sent before the cut
       "bad_request": "sdk-bad", "bad_request_code": "bad_messages",  # upstream 400
       "rate_limited": "sdk-limited", "retry_after": "1",             # upstream 429
       "server_error": "sdk-broken",                                  # upstream 500
       "unknown": "no-such-model",
       "listed": ["sdk-alias", "sdk-echo", ...]}          # ids /v1/models must hold
  SWITCHYARD_OPENAPI_SPEC  optional path of OpenAI's openapi.yaml; when set, responses,
      stream chunks, the model list and error bodies are validated against its schemas.

Every check prints `ok: ...`; the first failing one prints `FAIL: ...` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import openai
from openai import OpenAI

CASES = json.loads(os.environ["SWITCHYARD_SDK_CASES"])
BASE = os.environ["SWITCHYARD_BASE_URL"].rstrip("/") + "/v1"
client = OpenAI(base_url=BASE, api_key="test", max_retries=0, timeout=30.0)


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


# --- Optional: OpenAPI schema validation ---------------------------------------------------


class Schemas:
    """Validators for `components/schemas/NAME` of OpenAI's spec, made JSON-Schema-strict:
    `nullable: true` becomes a `null` alternative, and a stream chunk's `finish_reason`
    and `system_fingerprint` may be null (see shared/specs/README.md)."""

    def __init__(self, path: str) -> None:
        import jsonschema
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as f:
            spec = yaml.load(f, Loader=loader)
        schemas = _fix_nullable(spec["components"]["schemas"])
        # What real servers send but the spec does not allow: a null finish_reason in
        # chunks, and a null (deprecated) system_fingerprint.
        chunk_choice = schemas["CreateChatCompletionStreamResponse"]["properties"]["choices"]["items"]
        chunk_choice["properties"]["finish_reason"] = _nullable(
            chunk_choice["properties"]["finish_reason"]
        )
        for name in ("CreateChatCompletionResponse", "CreateChatCompletionStreamResponse"):
            props = schemas[name]["properties"]
            props["system_fingerprint"] = _nullable(props["system_fingerprint"])
        self._components = {"schemas": schemas}
        self._validators: dict = {}
        self._jsonschema = jsonschema

    def check(self, name: str, value: object, what: str) -> None:
        v = self._validators.get(name)
        if v is None:
            schema = {"$ref": f"#/components/schemas/{name}", "components": self._components}
            v = self._validators[name] = self._jsonschema.Draft202012Validator(schema)
        errors = sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path))
        assert not errors, (
            f"{what} does not match the spec's {name}: "
            + "; ".join(f"at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
            + f"\n  value: {json.dumps(value)[:2000]}"
        )


def _nullable(node: dict) -> dict:
    t = node.get("type")
    if isinstance(t, str):
        node = dict(node, type=[t, "null"])
    elif isinstance(t, list):
        node = dict(node, type=t if "null" in t else [*t, "null"])
    else:
        return {"anyOf": [node, {"type": "null"}]}
    if "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
    return node


def _fix_nullable(node):
    if isinstance(node, list):
        return [_fix_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _fix_nullable(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        out = _nullable(out)
    return out


SPEC = os.environ.get("SWITCHYARD_OPENAPI_SPEC")
schemas = Schemas(SPEC) if SPEC else None


def validate(name: str, value: object, what: str) -> None:
    if schemas is not None:
        schemas.check(name, value, what)


# --- Checks -----------------------------------------------------------------------------------


def check_chat() -> None:
    prompt = "hello from the python sdk"
    raw = client.chat.completions.with_raw_response.create(
        model=CASES["echo"], messages=[{"role": "user", "content": prompt}]
    )
    assert raw.status_code == 200, f"chat: status {raw.status_code}"
    assert raw.headers.get("x-request-id"), "chat: no x-request-id header"
    validate("CreateChatCompletionResponse", json.loads(raw.content), "the chat.completion body")
    completion = raw.parse()
    assert completion.object == "chat.completion", f"chat: object is {completion.object!r}"
    assert completion.choices, "chat: no choices"
    content = completion.choices[0].message.content
    assert content == prompt, f"chat: content {content!r} does not echo the prompt {prompt!r}"
    assert completion.choices[0].finish_reason == "stop", (
        f"chat: finish_reason {completion.choices[0].finish_reason!r}"
    )
    u = completion.usage
    assert u is not None, "chat: usage missing"
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens and u.total_tokens > 0, (
        f"chat: usage does not add up: {u}"
    )
    ok(f"chat.completions.create({CASES['echo']!r}) echoes the prompt, with usage")

    if "alias" in CASES:
        completion = client.chat.completions.create(
            model=CASES["alias"], messages=[{"role": "user", "content": "via the alias"}]
        )
        assert completion.choices[0].message.content == "via the alias", (
            f"alias: content {completion.choices[0].message.content!r}"
        )
        ok(f"chat.completions.create({CASES['alias']!r}) through a route")


def check_stream() -> None:
    pieces = CASES["stream_pieces"]
    stream = client.chat.completions.create(
        model=CASES["stream"],
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
    )
    assert isinstance(stream, openai.Stream), f"stream: got {type(stream).__name__}, not a Stream"
    chunks = []
    for chunk in stream:
        validate("CreateChatCompletionStreamResponse", chunk.to_dict(), f"stream chunk {len(chunks)}")
        assert chunk.object == "chat.completion.chunk", f"stream: chunk object {chunk.object!r}"
        chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(pieces), f"stream: deltas make {text!r}, the upstream sent {''.join(pieces)!r}"
    assert len(chunks) >= 2, f"stream: only {len(chunks)} chunk(s)"
    with_content = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert with_content == len(pieces), (
        f"stream: {with_content} chunks carry content, the upstream sent {len(pieces)} pieces"
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"], f"stream: finish reasons {finishes}"
    ok(f"streamed {len(chunks)} chunks through the SDK iterator; deltas make {text!r}")


def check_builtin() -> None:
    """The gateway's own `mock` dialect: JSON and SSE made by the gateway, not relayed."""
    if "builtin" not in CASES:
        return
    model, prompt = CASES["builtin"], "the built-in echo model streams word by word"
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    validate("CreateChatCompletionResponse", json.loads(raw.content), "the built-in mock's chat.completion")
    completion = raw.parse()
    assert completion.choices[0].message.content == prompt, (
        f"built-in mock: content {completion.choices[0].message.content!r}"
    )
    assert completion.usage and completion.usage.completion_tokens > 0, f"built-in mock: usage {completion.usage}"
    ok(f"built-in mock dialect ({model!r}) answers JSON through the SDK")

    chunks = []
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        validate("CreateChatCompletionStreamResponse", chunk.to_dict(), f"built-in stream chunk {len(chunks)}")
        chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == prompt, f"built-in mock stream: deltas make {text!r}, expected {prompt!r}"
    assert len(chunks) >= 3, f"built-in mock stream: only {len(chunks)} chunks"
    assert len({c.id for c in chunks}) == 1, f"built-in mock stream: chunk ids differ: {[c.id for c in chunks]}"
    last = chunks[-1]
    assert not last.choices and last.usage is not None, (
        f"built-in mock stream: with include_usage the last chunk should carry usage and no choices, got {last}"
    )
    ok(f"built-in mock dialect streams {len(chunks)} chunks ending with a usage chunk")


def check_models() -> None:
    page = client.models.list()
    ids = [m.id for m in page]
    for want in CASES["listed"]:
        assert want in ids, f"models.list(): {want!r} missing from {ids}"
    for m in page.data:
        assert m.object == "model", f"models.list(): {m.id} has object {m.object!r}"
    raw = client.models.with_raw_response.list()
    validate("ListModelsResponse", json.loads(raw.content), "the /v1/models body")
    ok(f"models.list() holds {CASES['listed']}")

    for want in CASES["listed"]:
        m = client.models.retrieve(want)
        assert m.id == want and m.object == "model", f"models.retrieve({want!r}) returned {m}"
    raw = client.models.with_raw_response.retrieve(CASES["listed"][0])
    validate("Model", json.loads(raw.content), "the /v1/models/{id} body")
    ok("models.retrieve(id) for every listed id")

    try:
        client.models.retrieve(CASES["unknown"])
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", f"models.retrieve(unknown): code {e.code!r}"
    else:
        raise AssertionError(f"models.retrieve({CASES['unknown']!r}) did not raise NotFoundError")
    ok("models.retrieve(unknown) raises NotFoundError")


def expect_error(cls, what: str, **create):
    """Calls chat.completions.create and returns the exception, which must be a `cls`."""
    create.setdefault("messages", [{"role": "user", "content": "hi"}])
    try:
        result = client.chat.completions.create(**create)
        if create.get("stream"):
            list(result)
    except openai.APIError as e:
        assert isinstance(e, cls), (
            f"{what}: raised {type(e).__name__} ({getattr(e, 'status_code', '-')}: {e}), "
            f"expected {cls.__name__}"
        )
        if isinstance(e, openai.APIStatusError):
            assert e.request_id, f"{what}: the error response has no x-request-id"
            validate("ErrorResponse", e.response.json(), f"{what}: the error body")
        return e
    raise AssertionError(f"{what}: no exception; expected {cls.__name__}")


def check_errors() -> None:
    e = expect_error(openai.NotFoundError, "unknown model", model=CASES["unknown"])
    assert e.status_code == 404 and e.code == "model_not_found", f"unknown model: {e.status_code} {e.code!r}"
    assert e.param == "model", f"unknown model: param {e.param!r}"
    ok("unknown model raises NotFoundError (404, model_not_found)")

    e = expect_error(
        openai.NotFoundError, "unknown model, streaming", model=CASES["unknown"], stream=True
    )
    ok("unknown model with stream=True raises NotFoundError before any chunk")

    # A request the gateway itself rejects: `stream` must be a boolean.
    e = expect_error(
        openai.BadRequestError,
        "malformed `stream`",
        model=CASES["echo"],
        extra_body={"stream": "yes"},
    )
    assert e.status_code == 400 and e.param == "stream", f"malformed stream: {e.status_code} param {e.param!r}"
    ok("a malformed request (stream: \"yes\") raises BadRequestError (400, param stream)")

    e = expect_error(openai.BadRequestError, "upstream 400", model=CASES["bad_request"])
    assert e.status_code == 400, f"upstream 400: status {e.status_code}"
    assert e.code == CASES["bad_request_code"], (
        f"upstream 400: code {e.code!r}, the upstream sent {CASES['bad_request_code']!r} (body not relayed?)"
    )
    ok("an upstream 400 is relayed and raises BadRequestError with the upstream's code")

    e = expect_error(openai.RateLimitError, "upstream 429", model=CASES["rate_limited"])
    assert e.status_code == 429, f"upstream 429: status {e.status_code}"
    assert e.response.headers.get("retry-after") == CASES["retry_after"], (
        f"upstream 429: Retry-After {e.response.headers.get('retry-after')!r}, expected {CASES['retry_after']!r}"
    )
    ok("an upstream that answers 429 gives RateLimitError with Retry-After")

    e = expect_error(openai.APIStatusError, "upstream 500", model=CASES["server_error"])
    assert e.status_code == 502, f"upstream 500: status {e.status_code}, expected 502"
    assert isinstance(e, openai.InternalServerError), f"upstream 500: {type(e).__name__}"
    ok("an upstream that answers 500 gives APIStatusError 502 (InternalServerError)")

    e = expect_error(
        openai.APIStatusError, "upstream 500, streaming", model=CASES["server_error"], stream=True
    )
    assert e.status_code == 502, f"upstream 500, streaming: status {e.status_code}, expected 502"
    ok("the same with stream=True raises before any chunk")


def check_broken_stream() -> None:
    if "drop" not in CASES:
        return
    pieces = CASES["drop_pieces"]
    stream = client.chat.completions.create(
        model=CASES["drop"], messages=[{"role": "user", "content": "hi"}], stream=True
    )
    got = []
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    except openai.APIError as e:
        assert got == pieces, f"broken stream: got {got} before the error, the upstream sent {pieces}"
        assert not isinstance(e, openai.APIStatusError), f"broken stream: {type(e).__name__}"
        assert e.code == "upstream_stream_error", (
            f"broken stream: {type(e).__name__} code {e.code!r} ({e}), expected an error event "
            "with code upstream_stream_error"
        )
        ok(f"a stream cut mid-way raises {type(e).__name__} after {len(got)} chunks: {e.message}")
        return
    raise AssertionError(f"broken stream: ended silently after {got}; expected an exception")


def main() -> int:
    print(f"openai {openai.__version__} against {BASE}"
          + (f"; validating against {SPEC}" if SPEC else "; no spec: schema validation skipped"),
          flush=True)
    try:
        check_chat()
        check_stream()
        check_builtin()
        check_models()
        check_errors()
        check_broken_stream()
    except AssertionError as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    except Exception as e:  # an SDK call raised where none was expected
        traceback.print_exc()
        print(f"FAIL: unexpected {type(e).__name__}: {e}", flush=True)
        return 1
    print("all SDK checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
