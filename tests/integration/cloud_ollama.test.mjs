// The ollama backend end to end: the real binary in front of a fake Ollama server
// (tests/fakes/ollama.mjs) speaking the native /api/chat NDJSON, driven through the OpenAI inbound
// API (fetch and the official `openai` SDK) and Ollama's own (keep_alive and unload passed on).
// Checks the wire (exact body, options), text, usage
// (streamed equal to non-streamed), tool calls, and the fault paths: Ollama's {"error"} bodies
// passed back, 5xx → 502, a slow first byte → 504, an error line or a reset mid-stream → an error
// chunk and no [DONE].

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  post,
  sseData,
  chatStreamText,
  assertUsage,
  usageCounts,
  describeRes,
} from './harness.mjs';
import { startOllamaFake, reply, errorReply, lines, line } from '../fakes/ollama.mjs';

const CHAT = '/v1/chat/completions';
const once = { retries: { max: 0 }, breaker: { failures: 0 } };

let fake;
let server;
let client;

before(async () => {
  fake = await startOllamaFake();
  const base = { backend: 'ollama', base_url: fake.url, upstream_model: 'llama3.2', ...once };
  server = await startServer(
    makeConfig({
      models: [
        { name: 'llama', ...base },
        { name: 'llama-slow', ...base, timeouts: { first_byte_ms: 300 } },
      ],
    }),
  );
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  if (server) await server.stop();
  if (fake) await fake.close();
});

function chatBody(extra = {}) {
  return { model: 'llama', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }], ...extra };
}

async function readStream(body, { onData } = {}) {
  const res = await fetch(server.url + CHAT, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const out = { status: res.status, datas: [], chunks: [], done: false };
  if (res.status !== 200) {
    out.text = await res.text();
    return out;
  }
  for await (const data of sseData(res)) {
    out.datas.push(data);
    if (data === '[DONE]') out.done = true;
    else out.chunks.push(JSON.parse(data));
    if (onData) onData(out.chunks[out.chunks.length - 1]);
  }
  return out;
}

function assertStreamEndsInError(out, what) {
  assert.equal(out.status, 200, `${what}: ${out.text}`);
  assert.ok(!out.done, `${what}: the stream ended with [DONE]`);
  const last = out.chunks[out.chunks.length - 1];
  assert.ok(last?.error, `${what}: the last chunk is not an error: ${out.datas.join(' | ')}`);
  return last.error;
}

describe('ollama backend', { timeout: TEST_TIMEOUT_MS }, () => {
  it('non-streaming chat: text, usage, and the exact /api/chat request', async () => {
    fake.push(reply({ text: 'Hello there.', promptEvalCount: 30, evalCount: 4 }));
    const res = await post(server, CHAT, chatBody({ temperature: 0.2, max_tokens: 20, seed: 3, stop: ['\n\n'] }));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.choices[0].message.content, 'Hello there.');
    assert.equal(res.json.choices[0].finish_reason, 'stop');
    assertUsage(res.json.usage);
    assert.deepEqual(usageCounts(res.json.usage), { prompt_tokens: 30, completion_tokens: 4, total_tokens: 34 });
    const rec = fake.last();
    assert.equal(rec.path, '/api/chat');
    assert.equal(rec.headers.authorization, undefined, 'no key configured, none sent');
    assert.equal(
      rec.text,
      '{"model":"llama3.2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello."}],' +
        '"stream":true,"options":{"temperature":0.2,"seed":3,"num_predict":20,"stop":["\\n\\n"]}}',
    );
  });

  it('streaming with the official SDK: usage equal to the non-streamed usage', async () => {
    fake.push(reply({ text: 'One two three.' }));
    const plain = await post(server, CHAT, chatBody());
    assert.equal(plain.status, 200, describeRes(plain));
    fake.push(reply({ text: 'One two three.' }));
    const stream = await client.chat.completions.create({ ...chatBody(), stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, 'One two three.');
    assert.deepEqual(usageCounts(usage), usageCounts(plain.json.usage));
  });

  it('tool calls come through whole and in order, finish_reason tool_calls', async () => {
    const calls = [
      { id: 'call_w', name: 'get_weather', arguments: { city: 'Paris' } },
      { id: 'call_t', name: 'get_time', arguments: { tz: 'UTC' } },
    ];
    fake.push(reply({ toolCalls: calls }));
    const tools = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
    ];
    const stream = await client.chat.completions.create({ ...chatBody(), tools, stream: true });
    const got = [];
    let finish = null;
    for await (const c of stream) {
      for (const d of c.choices[0]?.delta?.tool_calls ?? []) {
        if (d.id) got.push({ id: d.id, name: d.function.name, args: d.function.arguments ?? '' });
        else got[d.index].args += d.function?.arguments ?? '';
      }
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    assert.deepEqual(got, calls.map((c) => ({ id: c.id, name: c.name, args: JSON.stringify(c.arguments) })));
    assert.equal(finish, 'tool_calls');
    assert.deepEqual(fake.last().json.tools.map((t) => t.function.name), ['get_weather', 'get_time']);
  });

  it('keep_alive and the unload idiom pass through to the Ollama server', async () => {
    fake.push(reply({ text: '', doneReason: 'unload', promptEvalCount: 0, evalCount: 0 }));
    const res = await post(server, '/api/generate', { model: 'llama', keep_alive: 0, stream: false });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.done_reason, 'unload');
    assert.equal(res.json.response, '');
    const sent = fake.last().json;
    assert.equal(fake.last().path, '/api/chat');
    assert.deepEqual(sent.messages, [], "the server's own unload: nothing to generate from");
    assert.equal(sent.keep_alive, 0);

    fake.push(reply({ text: 'Hi.' }));
    const chat = await post(server, '/api/chat', { ...chatBody(), keep_alive: '1h30m', stream: false });
    assert.equal(chat.status, 200, describeRes(chat));
    assert.equal(chat.json.message.content, 'Hi.');
    assert.equal(fake.last().json.keep_alive, 5400, 'in seconds, as Ollama reads a number');
    assert.equal(fake.last().json.messages.length, 2);
  });

  it("Ollama's 404 error → 404 with its message", async () => {
    fake.push(errorReply(404, 'model "llama3.2" not found, try pulling it first'));
    const res = await post(server, CHAT, chatBody());
    assert.equal(res.status, 404, describeRes(res));
    assert.match(res.json.error.message, /not found, try pulling it first/);
  });

  it('500 → 502', async () => {
    fake.push(errorReply(500, 'llama runner process has terminated'));
    const res = await post(server, CHAT, chatBody());
    assert.equal(res.status, 502, describeRes(res));
  });

  it('a slow first byte past first_byte_ms → 504', async () => {
    fake.push({ hold: 'head' });
    const res = await post(server, CHAT, chatBody({ model: 'llama-slow' }));
    assert.equal(res.status, 504, describeRes(res));
  });

  it('an error line mid-stream → an error chunk and no [DONE]', async () => {
    fake.push((rec) => ({
      headers: { 'content-type': 'application/x-ndjson' },
      chunks: [...lines(rec, { text: 'Hello there friend.' }).slice(0, 2), line({ error: 'an error was encountered while running the model' })],
    }));
    const out = await readStream(chatBody());
    const err = assertStreamEndsInError(out, 'error line');
    assert.match(err.message, /while running the model/);
    assert.equal(chatStreamText(out.chunks), 'Hello there ');
  });

  it('a reset mid-stream → an error chunk and no [DONE]', async () => {
    let release;
    const gate = new Promise((resolve) => {
      release = resolve;
    });
    fake.push((rec) => ({
      headers: { 'content-type': 'application/x-ndjson' },
      chunks: [...lines(rec, { text: 'Hello there friend.' }).slice(0, 1), { waitFor: gate }],
      reset: true,
    }));
    const out = await readStream(chatBody(), {
      onData: (c) => {
        if (c?.choices?.[0]?.delta?.content) release();
      },
    });
    assertStreamEndsInError(out, 'reset');
  });
});
