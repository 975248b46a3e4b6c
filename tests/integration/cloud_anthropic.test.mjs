// The anthropic backend end to end: the real binary in front of a fake Anthropic Messages API
// (tests/fakes/anthropic.mjs), driven through the OpenAI inbound API. Checks what went over the
// wire (body, x-api-key, anthropic-version) and what the client got: text, tool calls complete
// and in order, usage with cached tokens, streamed usage equal to non-streamed usage, and the
// error paths (529, 429, a refused key, an error event mid-stream).

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
  assertOpenAIError,
  assertUsage,
  describeRes,
} from './harness.mjs';
import { startAnthropicFake, reply, errorReply } from '../fakes/anthropic.mjs';

const API_KEY = 'sk-ant-test-0123456789';
const UPSTREAM_MODEL = 'claude-test-1';

/* One attempt, no breaker trips: the error paths must reach the client as the provider said. */
const once = { retries: { max: 0 }, breaker: { failures: 1000 } };

let fake;
let server;

before(async () => {
  fake = await startAnthropicFake({ apiKey: API_KEY });
  server = await startServer(
    makeConfig({
      models: [
        { name: 'claude', backend: 'anthropic', base_url: fake.url, api_key: API_KEY, upstream_model: UPSTREAM_MODEL, ...once },
        { name: 'claude-badkey', backend: 'anthropic', base_url: fake.url, api_key: 'sk-ant-wrong', upstream_model: UPSTREAM_MODEL, ...once },
      ],
    }),
  );
});

after(async () => {
  if (server) await server.stop();
  if (fake) await fake.close();
});

const USAGE = { input_tokens: 12, output_tokens: 9, cache_read_input_tokens: 100, cache_creation_input_tokens: 4 };

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

const TOOL_CALLS = [
  { id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } },
  { id: 'toolu_01B', name: 'get_time', input: { tz: 'Europe/Paris' } },
];

function chatBody(extra = {}) {
  return {
    model: 'claude',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say hello.' },
    ],
    ...extra,
  };
}

async function chat(body) {
  const res = await post(server, '/v1/chat/completions', body);
  assert.equal(res.status, 200, describeRes(res));
  return res.json;
}

async function chatStream(body) {
  const res = await postStream(server, '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
  assert.equal(res.status, 200, describeRes(res));
  assert.ok(res.stream.done && res.stream.doneLast, `no final [DONE]:\n${res.text.slice(-600)}`);
  return res.stream;
}

/* The streamed tool calls, assembled by index as an OpenAI client does; fails on a delta that
 * names a call out of order or arrives before its call was introduced. */
function assembleToolCalls(chunks) {
  const calls = [];
  for (const c of chunks) {
    for (const tc of c.choices?.[0]?.delta?.tool_calls ?? []) {
      if (calls[tc.index] === undefined) {
        assert.equal(tc.index, calls.length, `tool call ${tc.index} introduced out of order`);
        assert.ok(tc.id && tc.function?.name, `first delta of call ${tc.index} lacks id or name: ${JSON.stringify(tc)}`);
        calls[tc.index] = { id: tc.id, name: tc.function.name, arguments: '' };
      }
      calls[tc.index].arguments += tc.function?.arguments ?? '';
    }
  }
  return calls;
}

function expectedUsage(u) {
  const prompt = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
  return { prompt_tokens: prompt, completion_tokens: u.output_tokens, total_tokens: prompt + u.output_tokens };
}

describe('anthropic backend', { timeout: TEST_TIMEOUT_MS }, () => {
  it('chat: the request on the wire and the reply, usage with cached tokens', async () => {
    fake.reset();
    fake.push(reply({ apiKey: API_KEY, text: 'Hello there, friend.', usage: USAGE }));
    const r = await chat(chatBody({ temperature: 0.3, max_tokens: 64, stop: ['END'] }));
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, 'Hello there, friend.');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assertUsage(r.usage);
    assert.deepEqual(
      { prompt_tokens: r.usage.prompt_tokens, completion_tokens: r.usage.completion_tokens, total_tokens: r.usage.total_tokens },
      expectedUsage(USAGE),
    );
    assert.equal(r.usage.prompt_tokens_details?.cached_tokens, 100);

    assert.equal(fake.requests.length, 1);
    const rec = fake.last();
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/v1/messages');
    assert.equal(rec.headers['x-api-key'], API_KEY);
    assert.equal(rec.headers['anthropic-version'], '2023-06-01');
    assert.match(rec.headers['content-type'], /^application\/json/);
    assert.equal(rec.headers.authorization, undefined, 'the key goes in x-api-key only');
    assert.equal(rec.json.model, UPSTREAM_MODEL);
    assert.equal(rec.json.stream, true, 'always streamed upstream');
    assert.equal(rec.json.max_tokens, 64);
    assert.equal(rec.json.temperature, 0.3);
    assert.deepEqual(rec.json.stop_sequences, ['END']);
    assert.equal(rec.json.system, 'You are terse.');
    assert.deepEqual(rec.json.messages, [{ role: 'user', content: [{ type: 'text', text: 'Say hello.' }] }]);
  });

  it('max_tokens defaults to 4096 when the client sets none', async () => {
    fake.reset();
    await chat(chatBody());
    assert.equal(fake.last().json.max_tokens, 4096);
  });

  it('stream: the same text and the same usage as without streaming', async () => {
    fake.reset();
    const opts = { apiKey: API_KEY, text: 'One two three four five.', usage: USAGE };
    fake.push(reply(opts), reply(opts));
    const whole = await chat(chatBody());
    const s = await chatStream(chatBody());
    assert.equal(fake.requests[1].connection, fake.requests[0].connection, 'the connection is reused after a finished stream');
    assert.equal(chatStreamText(s.chunks), whole.choices[0].message.content);
    assert.equal(streamFinishReason(s.chunks), 'stop');
    const usageChunk = s.chunks.find((c) => c.usage);
    assert.ok(usageChunk, 'a usage chunk');
    assert.deepEqual(
      { ...usageChunk.usage, prompt_tokens_details: undefined, completion_tokens_details: undefined },
      { ...whole.usage, prompt_tokens_details: undefined, completion_tokens_details: undefined },
    );
    assert.equal(usageChunk.usage.prompt_tokens_details?.cached_tokens, 100);
  });

  it('tools: history rendered as tool_use / tool_result, calls back complete and in order', async () => {
    const history = {
      model: 'claude',
      tools: TOOLS,
      tool_choice: 'required',
      messages: [
        { role: 'user', content: 'Weather and time in Paris?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'toolu_00', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon"}' } }],
        },
        { role: 'tool', tool_call_id: 'toolu_00', content: '21C' },
        { role: 'user', content: 'Now Paris, and the time.' },
      ],
    };
    fake.reset();
    const opts = { apiKey: API_KEY, toolCalls: TOOL_CALLS, text: 'Let me look.', usage: USAGE };
    fake.push(reply(opts), reply(opts));

    const r = await chat(history);
    const msg = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, 2);
    msg.tool_calls.forEach((tc, i) => {
      assert.equal(tc.id, TOOL_CALLS[i].id);
      assert.equal(tc.function.name, TOOL_CALLS[i].name);
      assert.deepEqual(JSON.parse(tc.function.arguments), TOOL_CALLS[i].input);
    });

    const body = fake.requests[0].json;
    assert.deepEqual(body.tool_choice, { type: 'any' });
    assert.equal(body.tools.length, 2);
    assert.deepEqual(body.tools[0].input_schema, TOOLS[0].function.parameters);
    assert.equal(body.messages.length, 3, 'user / assistant / user: the tool result and the next question merged');
    assert.deepEqual(body.messages[1], {
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'toolu_00', name: 'get_weather', input: { city: 'Lyon' } }],
    });
    assert.deepEqual(body.messages[2].content[0], {
      type: 'tool_result',
      tool_use_id: 'toolu_00',
      content: [{ type: 'text', text: '21C' }],
    });
    assert.deepEqual(body.messages[2].content[1], { type: 'text', text: 'Now Paris, and the time.' });

    const s = await chatStream(history);
    const calls = assembleToolCalls(s.chunks);
    assert.equal(calls.length, 2);
    calls.forEach((tc, i) => {
      assert.equal(tc.id, TOOL_CALLS[i].id);
      assert.equal(tc.name, TOOL_CALLS[i].name);
      assert.deepEqual(JSON.parse(tc.arguments), TOOL_CALLS[i].input, `streamed arguments of call ${i}`);
    });
    assert.equal(streamFinishReason(s.chunks), 'tool_calls');
    assert.equal(chatStreamText(s.chunks), 'Let me look.');
    const usageChunk = s.chunks.find((c) => c.usage);
    assert.equal(usageChunk.usage.prompt_tokens, r.usage.prompt_tokens);
    assert.equal(usageChunk.usage.completion_tokens, r.usage.completion_tokens);
  });

  it('529 overloaded: a 503 error in OpenAI shape with the provider message', async () => {
    fake.reset();
    fake.push(errorReply(529, 'overloaded_error', 'Overloaded'));
    const res = await post(server, '/v1/chat/completions', chatBody());
    const err = assertOpenAIError(res, 503, { type: 'server_error' });
    assert.match(err.message, /Overloaded/);
  });

  it('429 rate limited: a 429 error', async () => {
    fake.reset();
    fake.push(errorReply(429, 'rate_limit_error', 'Number of request tokens has exceeded your rate limit.', { retryAfter: 1 }));
    const res = await post(server, '/v1/chat/completions', chatBody());
    const err = assertOpenAIError(res, 429, { type: 'requests' });
    assert.match(err.message, /rate limit/);
  });

  it('a refused API key: 401 saying it is the gateway key, without the key', async () => {
    fake.reset();
    const res = await post(server, '/v1/chat/completions', chatBody({ model: 'claude-badkey' }));
    const err = assertOpenAIError(res, 401);
    assert.match(err.message, /refused the gateway's API key/);
    assert.match(err.message, /invalid x-api-key/);
    assert.doesNotMatch(res.text, /sk-ant-wrong/);
    assert.doesNotMatch(server.output(), /sk-ant-wrong|sk-ant-test/, 'keys never logged');
  });

  it('an error event mid-stream: an error chunk, no [DONE]', async () => {
    fake.reset();
    let clientSawText;
    const sawText = new Promise((resolve) => {
      clientSawText = resolve;
    });
    // The provider streams some text, then fails, only once the client has received that text:
    // the failure is then after the first byte, and must not look like a complete stream.
    fake.push((rec) => {
      const r = reply({ apiKey: API_KEY, text: 'Partial answer that', errorAfter: { events: 3, type: 'overloaded_error', message: 'Overloaded' } })(rec);
      const chunks = r.chunks.map((c) => ({ data: c }));
      chunks[chunks.length - 1].waitFor = sawText;
      return { ...r, chunks };
    });
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chatBody(), stream: true }),
    });
    assert.equal(res.status, 200);
    const events = [];
    for await (const data of sseData(res)) {
      events.push(data);
      if (data !== '[DONE]' && JSON.parse(data).choices?.[0]?.delta?.content) clientSawText();
    }
    assert.ok(!events.includes('[DONE]'), `[DONE] after an upstream failure: ${events.join('\n')}`);
    const last = JSON.parse(events[events.length - 1]);
    assert.ok(last.error, `the stream ends with an error chunk: ${events.join('\n')}`);
    assert.match(last.error.message, /Overloaded/);
    const text = events
      .filter((d) => d !== '[DONE]')
      .map((d) => JSON.parse(d).choices?.[0]?.delta?.content ?? '')
      .join('');
    assert.ok(text.startsWith('Partial'), `text before the error: ${text}`);
  });

  it('a stream cut before message_stop is an error, not a short success', async () => {
    fake.reset();
    fake.push((rec) => {
      const r = reply({ apiKey: API_KEY, text: 'Never finished' })(rec);
      return { ...r, chunks: r.chunks.slice(0, -2) };
    });
    const res = await request(server, 'POST', '/v1/chat/completions', { body: chatBody() });
    assert.ok(res.status >= 500, describeRes(res));
    assert.match(res.json?.error?.message ?? '', /message_stop/);
  });
  it('a request Anthropic cannot take: 400 saying why, and nothing sent upstream', async () => {
    fake.reset();
    const res = await post(server, '/v1/chat/completions', {
      model: 'claude',
      messages: [
        { role: 'user', content: 'Go' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '[1,2]' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'done' },
      ],
    });
    const err = assertOpenAIError(res, 400);
    assert.match(err.message, /not a JSON object/);
    assert.equal(fake.requests.length, 0);
  });

  it('a client that goes away mid-stream: the call is cancelled, the server keeps serving', async () => {
    fake.reset();
    // Some text, then the provider holds the stream open until its client (the gateway) leaves.
    fake.push((rec) => {
      const r = reply({ apiKey: API_KEY, text: 'One two three four five six seven' })(rec);
      return { ...r, chunks: r.chunks.slice(0, 4), hold: 'body' };
    });
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chatBody(), stream: true }),
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    let sawText = false;
    try {
      for await (const data of sseData(res)) {
        if (data !== '[DONE]' && JSON.parse(data).choices?.[0]?.delta?.content) {
          sawText = true;
          ac.abort();
        }
      }
    } catch (err) {
      assert.equal(err.name, 'AbortError', String(err));
    }
    assert.ok(sawText, 'text arrived before the client left');
    const r = await chat(chatBody());
    assert.equal(r.choices[0].finish_reason, 'stop');
  });

  it('the official openai SDK: streamed tool calls assemble into the complete calls', async () => {
    fake.reset();
    fake.push(reply({ apiKey: API_KEY, toolCalls: TOOL_CALLS, text: 'Let me look.' }));
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
    const stream = client.chat.completions.stream({
      model: 'claude',
      messages: [{ role: 'user', content: 'Weather and time in Paris?' }],
      tools: TOOLS,
      stream_options: { include_usage: true },
    });
    const done = await stream.finalChatCompletion();
    const msg = done.choices[0].message;
    assert.equal(msg.content, 'Let me look.');
    assert.equal(done.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, TOOL_CALLS.length);
    msg.tool_calls.forEach((tc, i) => {
      assert.equal(tc.id, TOOL_CALLS[i].id);
      assert.equal(tc.function.name, TOOL_CALLS[i].name);
      assert.deepEqual(JSON.parse(tc.function.arguments), TOOL_CALLS[i].input);
    });
    assert.ok(done.usage && done.usage.prompt_tokens > 0, JSON.stringify(done.usage));
  });

  it('shuts down cleanly: exit status 0 (no leak or late callback under the sanitizers)', async () => {
    const st = await server.stop();
    const out = server.output();
    server = null;
    assert.ok(st !== null, `did not exit after SIGTERM\n${out}`);
    assert.equal(st.signal, null, out);
    assert.equal(st.code, 0, out);
  });
});
