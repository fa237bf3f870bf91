"""The OpenAI Python SDK's calls beyond chat against a running Switchyard gateway
(tests/e2e/surface.rs starts it): moderations, images, audio speech to a file, a
transcription of a WAV made here, responses (plain and streamed). Prints `ok: ...` per check; `FAIL: ...` and exit 1 on
the first failure."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

from openai import OpenAI

BASE = os.environ["SWITCHYARD_BASE_URL"].rstrip("/") + "/v1"
client = OpenAI(base_url=BASE, api_key="test", max_retries=0, timeout=30.0)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def main() -> int:
    try:
        m = client.moderations.create(model="moderation", input="hello")
        check(m.results[0].flagged is False, f"moderations {m}")
        print("ok: moderations.create", flush=True)

        img = client.images.generate(model="gpt-image-1", prompt="a cat")
        check(img.data[0].b64_json == "aGVsbG8=", f"images {img}")
        print("ok: images.generate", flush=True)

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "speech.mp3")
            with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="hello") as r:
                r.stream_to_file(path)
            data = open(path, "rb").read()
            check(data == b"ID3\x04\x00\xff\xfb\x90\x00more-audio", f"speech bytes {data!r}")
        print("ok: audio.speech streamed to a file", flush=True)

        # A small WAV made here, sent as the SDK sends it (multipart, model as a field).
        import io
        import wave

        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x00\x00" * 800)
        t = client.audio.transcriptions.create(model="stt", file=("hello.wav", buf.getvalue(), "audio/wav"))
        check(t.text == "hello", f"transcription {t}")
        print("ok: audio.transcriptions.create (multipart, routed by its model field)", flush=True)

        r = client.responses.create(model="gpt-4o", input="hi")
        check(r.output_text == "Hi there", f"responses {r}")
        print("ok: responses.create", flush=True)

        text, done = "", False
        for event in client.responses.create(model="gpt-4o", input="hi", stream=True):
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.completed":
                done = True
        check(text == "Hi there" and done, f"responses stream {text!r} {done}")
        print("ok: responses.create(stream=True)", flush=True)
    except Exception as e:  # noqa: BLE001 - report any failure with its trace
        traceback.print_exc()
        print(f"FAIL: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
