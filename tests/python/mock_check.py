"""The OpenAI Python SDK's default calls against the gateway's built-in mock model (the
no-key default config): embeddings (the SDK asks for base64), a streamed legacy
completion, and the Responses API plain and streamed (through the SDK's stream
helper, which checks the event sequence). Run by tests/e2e/surface.rs."""

from __future__ import annotations

import os
import sys
import traceback

from openai import OpenAI

BASE = os.environ["SWITCHYARD_BASE_URL"].rstrip("/") + "/v1"
client = OpenAI(base_url=BASE, api_key="test", max_retries=0, timeout=30.0)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def main() -> int:
    try:
        e = client.embeddings.create(model="mock-echo", input=["a", "b"])
        check([d.embedding for d in e.data] == [[0.0, 0.5, 1.0]] * 2, f"embeddings {e}")
        print("ok: embeddings.create (base64 by default) decodes to the vector", flush=True)

        text = "".join(c.choices[0].text for c in client.completions.create(model="mock-echo", prompt="say it back", stream=True) if c.choices)
        check(text == "say it back", f"completions stream {text!r}")
        print("ok: completions.create(stream=True)", flush=True)

        r = client.responses.create(model="mock-echo", input="hello mock")
        check(r.output_text == "hello mock", f"responses {r}")
        print("ok: responses.create", flush=True)

        with client.responses.stream(model="mock-echo", input=[{"role": "user", "content": "streamed words here"}]) as stream:
            deltas = "".join(ev.delta for ev in stream if ev.type == "response.output_text.delta")
            final = stream.get_final_response()
        check(deltas == "streamed words here" and final.output_text == deltas, f"responses stream {deltas!r} / {final.output_text!r}")
        print("ok: responses.stream with the SDK's accumulator", flush=True)
    except Exception as e:  # noqa: BLE001 - report any failure with its trace
        traceback.print_exc()
        print(f"FAIL: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
