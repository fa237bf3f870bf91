// openai-node's default calls against a running gateway (tests/e2e/node_sdk.rs starts it
// with the built-in mock): embeddings as the SDK sends them by default (base64), a chat
// stream through the SDK's iterator, and the Responses API. Prints `ok: …` per check;
// exits 1 with `FAIL: …` on the first failure.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.SWITCHYARD_BASE_URL + "/v1", apiKey: "test", maxRetries: 0 });

function check(cond, what) {
  if (!cond) throw new Error(what);
}

try {
  const e = await client.embeddings.create({ model: "mock-echo", input: "hello" });
  check(JSON.stringify(e.data[0].embedding) === JSON.stringify([0, 0.5, 1]), `embeddings ${JSON.stringify(e)}`);
  console.log("ok: embeddings.create (default encoding) decodes to the vector");

  const stream = await client.chat.completions.create({
    model: "mock-echo",
    stream: true,
    messages: [{ role: "user", content: "hello from node" }],
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  check(text === "hello from node", `chat stream ${JSON.stringify(text)}`);
  console.log("ok: chat.completions.create({stream: true})");

  const r = await client.responses.create({ model: "mock-echo", input: "node responses" });
  check(r.output_text === "node responses", `responses ${JSON.stringify(r)}`);
  console.log("ok: responses.create");
} catch (err) {
  console.log(`FAIL: ${err?.stack ?? err}`);
  process.exit(1);
}
