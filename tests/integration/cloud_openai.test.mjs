// The openai backend end to end: the real binary in front of a fake OpenAI-compatible server
// (tests/fakes/openai.mjs), driven through the OpenAI inbound API with fetch and with the official
// `openai` SDK. Checks what went over the wire (exact body, Authorization) and what the client got:
// text, usage (streamed equal to non-streamed, cached tokens), tool-call deltas complete and in
// order, connection reuse, and the fault paths (4xx passed back, 5xx → 502, a slow first byte →
// 504, a refused connection → 502, a reset or stalled or malformed stream → an error chunk and no
// [DONE]); and that the API key never reaches a log line or a client.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  post,
  postStream,
  request,
  sseData,
  chatStreamText,
  streamFinishReason,
  assertUsage,
  usageCounts,
  describeRes,
  closedPort,
  stopClean,
} from './harness.mjs';
import { startOpenAIFake, reply, errorReply, streamChunks, chunk } from '../fakes/openai.mjs';

const API_KEY = 'sk-test-openai-0123456789abcdef';
const UPSTREAM_MODEL = 'gpt-4o-mini-test';
const CHAT = '/v1/chat/completions';

/* One attempt and no breaker trips: each fault must reach the client as it happened. */
const once = { retries: { max: 0 }, breaker: { failures: 0 } };

let fake;
let server;
let client;
const clientBodies = []; // every error body a client received, checked for the key at the end

before(async () => {
  fake = await startOpenAIFake();
  const dead = await closedPort();
  const base = { backend: 'openai', base_url: `${fake.url}/v1`, api_key: API_KEY, upstream_model: UPSTREAM_MODEL, ...once };
  server = await startServer(
    makeConfig({
      models: [
        { name: 'gpt', ...base },
        { name: 'gpt-slow', ...base, timeouts: { first_byte_ms: 300 } },
        { name: 'gpt-idle', ...base, timeouts: { idle_ms: 300 } },
        { name: 'gpt-dead', ...base, base_url: `http://127.0.0.1:${dead}/v1`, timeouts: { connect_ms: 2000 } },
      ],
    }),
  );
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'client-side-key', maxRetries: 0 });
});

after(async () => {
  if (fake) await fake.close();
  if (server) {
    // A clean exit: no leak or undefined behaviour reported by the sanitizers of a debug build.
    await stopClean(server);
  }
});

const USAGE = { prompt_tokens: 21, completion_tokens: 6, cached_tokens: 16 };

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather by city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];

/* Two calls whose arguments arrive in small pieces, the way OpenAI streams them. */
const TOOL_CALLS = [
  { id: 'call_A1', name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}', pieces: ['{"ci', 'ty":"Pa', 'ris","unit"', ':"celsius"}'] },
  { id: 'call_B2', name: 'get_time', arguments: '{"tz":"Europe/Paris"}', pieces: ['{"tz":', '"Europe/Paris"}'] },
];

function chatBody(extra = {}) {
  return { model: 'gpt', messages: [{ role: 'user', content: 'Say hello.' }], temperature: 0, max_tokens: 16, ...extra };
}

/* Reads a streamed response to its end: { status, datas (strings), chunks (parsed), done }. */
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

/* The error chunk a stream must end with after a failure, and no [DONE]. */
function assertStreamEndsInError(out, what) {
  assert.equal(out.status, 200, `${what}: ${out.text}`);
  assert.ok(!out.done, `${what}: the stream ended with [DONE]: ${out.datas.join(' | ')}`);
  const last = out.chunks[out.chunks.length - 1];
  assert.ok(last?.error, `${what}: the last chunk is not an error: ${out.datas.join(' | ')}`);
  assert.equal(typeof last.error.message, 'string');
  clientBodies.push(JSON.stringify(last));
  return last.error;
}

describe('openai backend', { timeout: TEST_TIMEOUT_MS }, () => {
  it('non-streaming chat: text, usage with cached tokens, and the exact upstream request', async () => {
    fake.push(reply({ text: 'Hello there, friend.', usage: USAGE }));
    const res = await post(server, CHAT, chatBody());
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'gpt');
    assert.equal(res.json.choices[0].message.content, 'Hello there, friend.');
    assert.equal(res.json.choices[0].finish_reason, 'stop');
    assertUsage(res.json.usage);
    assert.deepEqual(usageCounts(res.json.usage), { prompt_tokens: 21, completion_tokens: 6, total_tokens: 27 });
    assert.equal(res.json.usage.prompt_tokens_details?.cached_tokens, 16, JSON.stringify(res.json.usage));

    const rec = fake.last();
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/v1/chat/completions');
    assert.equal(rec.headers.authorization, `Bearer ${API_KEY}`);
    assert.match(rec.headers['content-type'], /^application\/json/);
    // Always a stream upstream, with usage, whatever the client asked.
    assert.equal(
      rec.text,
      `{"model":"${UPSTREAM_MODEL}","messages":[{"role":"user","content":"Say hello."}],"stream":true,` +
        '"stream_options":{"include_usage":true},"temperature":0,"max_tokens":16}',
    );
  });

  it('streaming with the official SDK: deltas, usage equal to the non-streamed usage', async () => {
    fake.push(reply({ text: 'One two three four.', usage: USAGE }));
    const plain = await post(server, CHAT, chatBody());
    assert.equal(plain.status, 200, describeRes(plain));

    fake.push(reply({ text: 'One two three four.', usage: USAGE }));
    const stream = await client.chat.completions.create({
      ...chatBody(),
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    let finish = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, 'One two three four.');
    assert.equal(finish, 'stop');
    assert.deepEqual(usageCounts(usage), usageCounts(plain.json.usage));
    assert.equal(fake.last().json.stream, true);
  });

  it('tool-call deltas arrive complete and in order (official SDK, streaming)', async () => {
    fake.push(reply({ toolCalls: TOOL_CALLS, usage: USAGE }));
    const stream = await client.chat.completions.create({
      ...chatBody({ messages: [{ role: 'user', content: 'Weather and time in Paris?' }] }),
      tools: TOOLS,
      tool_choice: 'auto',
      stream: true,
    });
    const calls = [];
    let finish = null;
    for await (const c of stream) {
      for (const d of c.choices[0]?.delta?.tool_calls ?? []) {
        if (d.id) {
          assert.equal(d.index, calls.length, `call ${d.id} started out of order`);
          calls.push({ id: d.id, name: d.function?.name, args: d.function?.arguments ?? '' });
        } else {
          assert.ok(calls[d.index], `a delta for call ${d.index} before it started`);
          assert.equal(d.index, calls.length - 1, 'a delta for an earlier call after a later one began');
          calls[d.index].args += d.function?.arguments ?? '';
        }
      }
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    assert.deepEqual(
      calls,
      TOOL_CALLS.map((t) => ({ id: t.id, name: t.name, args: t.arguments })),
    );
    assert.equal(finish, 'tool_calls');
    for (const c of calls) JSON.parse(c.args);
    // The tools went upstream as OpenAI defines them.
    const sent = fake.last().json;
    assert.deepEqual(sent.tools, TOOLS);
    assert.equal(sent.tool_choice, undefined, 'auto is the default and is left out');
  });

  it('tool calls, non-streaming (official SDK), then the tool result goes back upstream', async () => {
    fake.push(reply({ toolCalls: TOOL_CALLS, usage: USAGE }));
    const res = await client.chat.completions.create({
      ...chatBody({ messages: [{ role: 'user', content: 'Weather?' }] }),
      tools: TOOLS,
    });
    const got = res.choices[0].message.tool_calls;
    assert.deepEqual(
      got.map((t) => ({ id: t.id, name: t.function.name, args: t.function.arguments })),
      TOOL_CALLS.map((t) => ({ id: t.id, name: t.name, args: t.arguments })),
    );
    assert.equal(res.choices[0].finish_reason, 'tool_calls');

    fake.push(reply({ text: 'It is 21 degrees.' }));
    const next = await client.chat.completions.create({
      ...chatBody({
        messages: [
          { role: 'user', content: 'Weather?' },
          res.choices[0].message,
          { role: 'tool', tool_call_id: 'call_A1', content: '21 C' },
          { role: 'tool', tool_call_id: 'call_B2', content: '14:00' },
        ],
      }),
      tools: TOOLS,
    });
    assert.equal(next.choices[0].message.content, 'It is 21 degrees.');
    const sent = fake.last().json.messages;
    assert.deepEqual(sent[1].tool_calls, TOOL_CALLS.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } })));
    assert.deepEqual(sent[2], { role: 'tool', content: '21 C', tool_call_id: 'call_A1' });
  });

  it('text completions go to /completions', async () => {
    fake.push(reply({ text: 'upon a time' }));
    const res = await post(server, '/v1/completions', { model: 'gpt', prompt: 'Once', max_tokens: 5 });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.choices[0].text, 'upon a time');
    assert.equal(fake.last().path, '/v1/completions');
    assert.equal(fake.last().json.prompt, 'Once');
  });

  it('sequential requests reuse the upstream connection', async () => {
    await post(server, CHAT, chatBody()); // warm: a connection exists
    const before = fake.connections;
    for (let i = 0; i < 3; i++) {
      const res = await post(server, CHAT, chatBody());
      assert.equal(res.status, 200, describeRes(res));
    }
    assert.equal(fake.connections, before, 'new upstream connections were opened');
  });

  it('upstream 400 → 400 with the provider message', async () => {
    fake.push(errorReply(400, "Invalid value for 'temperature': must be <= 2.", { param: 'temperature' }));
    const res = await post(server, CHAT, chatBody());
    clientBodies.push(res.text);
    assert.equal(res.status, 400, describeRes(res));
    assert.match(res.json.error.message, /Invalid value for 'temperature': must be <= 2\./);
  });

  it('upstream 401 → 401, and a key quoted back is masked', async () => {
    fake.push(errorReply(401, `Incorrect API key provided: ${API_KEY}.`, { type: 'invalid_request_error', code: 'invalid_api_key' }));
    const res = await post(server, CHAT, chatBody());
    clientBodies.push(res.text);
    assert.equal(res.status, 401, describeRes(res));
    assert.match(res.json.error.message, /Incorrect API key provided/);
  });

  it('upstream 429 → 429', async () => {
    fake.push(errorReply(429, 'Rate limit reached for requests', { retryAfter: 1 }));
    const res = await post(server, CHAT, chatBody());
    clientBodies.push(res.text);
    assert.equal(res.status, 429, describeRes(res));
    assert.match(res.json.error.message, /Rate limit reached/);
  });

  it('upstream 500 → 502', async () => {
    fake.push(errorReply(500, 'The server had an error while processing your request.'));
    const res = await post(server, CHAT, chatBody());
    clientBodies.push(res.text);
    assert.equal(res.status, 502, describeRes(res));
  });

  it('a slow first byte past first_byte_ms → 504', async () => {
    fake.push({ hold: 'head' });
    const res = await post(server, CHAT, chatBody({ model: 'gpt-slow' }));
    clientBodies.push(res.text);
    assert.equal(res.status, 504, describeRes(res));
    assert.match(res.json.error.message, /first_byte_ms/);
  });

  it('a refused connection → 502', async () => {
    const res = await post(server, CHAT, chatBody({ model: 'gpt-dead' }));
    clientBodies.push(res.text);
    assert.equal(res.status, 502, describeRes(res));
  });

  it('a connection reset mid-stream → an error chunk and no [DONE]', async () => {
    let release;
    const gate = new Promise((resolve) => {
      release = resolve;
    });
    // The reset comes only once the client has seen the first words: the failure is after the
    // stream began, whatever the timing.
    fake.push((rec) => {
      const all = streamChunks(rec, { text: 'Hello there, this stream will break.' });
      return { headers: { 'content-type': 'text/event-stream' }, chunks: [...all.slice(0, 3), { waitFor: gate }], reset: true };
    });
    const out = await readStream(chatBody(), {
      onData: (c) => {
        if (c?.choices?.[0]?.delta?.content) release();
      },
    });
    assertStreamEndsInError(out, 'reset');
    assert.ok(chatStreamText(out.chunks).startsWith('Hello '), out.datas.join(' | '));
  });

  it('a stream that stalls past idle_ms → an error chunk and no [DONE]', async () => {
    fake.push((rec) => ({
      headers: { 'content-type': 'text/event-stream' },
      chunks: streamChunks(rec, { text: 'Hello there, then silence.' }).slice(0, 3),
      hold: 'body',
    }));
    const out = await readStream(chatBody({ model: 'gpt-idle' }));
    const err = assertStreamEndsInError(out, 'stall');
    assert.match(err.message, /idle_ms/);
  });

  it('a malformed chunk mid-stream → an error chunk and no [DONE]', async () => {
    fake.push((rec) => ({
      headers: { 'content-type': 'text/event-stream' },
      chunks: [...streamChunks(rec, { text: 'Hello there.' }).slice(0, 2), 'data: {"choices": [oops\n\n', ...streamChunks(rec).slice(-2)],
    }));
    const out = await readStream(chatBody());
    const err = assertStreamEndsInError(out, 'malformed');
    assert.match(err.message, /malformed/);
  });

  it('an error object inside the stream → an error chunk with its message', async () => {
    fake.push((rec) => ({
      headers: { 'content-type': 'text/event-stream' },
      chunks: [...streamChunks(rec, { text: 'Hello there.' }).slice(0, 2), chunk({ error: { message: 'The model overloaded mid-stream', type: 'server_error' } })],
    }));
    const out = await readStream(chatBody());
    const err = assertStreamEndsInError(out, 'in-stream error');
    assert.match(err.message, /overloaded mid-stream/);
  });

  it('the server is still healthy and the API key never reached a log or a client', async () => {
    const h = await request(server, 'GET', '/health');
    assert.equal(h.status, 200);
    const res = await postStream(server, CHAT, chatBody({ stream: true }));
    assert.equal(res.status, 200, describeRes(res));
    assert.ok(res.stream.done);
    assert.equal(streamFinishReason(res.stream.chunks), 'stop');
    assert.ok(clientBodies.length >= 8, `only ${clientBodies.length} error bodies were collected`);
    for (const b of clientBodies) assert.ok(!b.includes(API_KEY), `the key reached a client: ${b}`);
    assert.ok(!server.output().includes(API_KEY), 'the key reached the log');
    assert.ok(!server.output().includes(API_KEY.slice(8)), 'part of the key reached the log');
  });
});
