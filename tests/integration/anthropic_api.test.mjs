// The inbound Anthropic Messages API end to end, driven by the official @anthropic-ai/sdk: served by
// the local model (non-streaming and streaming, stop sequences, max_tokens, usage equal to the
// OpenAI endpoint's for the same prompt, the model list in Anthropic's shape, both ways of sending
// the key), errors in Anthropic's shape (missing max_tokens, unknown model, unknown path), and a
// model served by an OpenAI-compatible backend (tests/fakes/openai.mjs) with tool calls, so that
// Anthropic-in x OpenAI-out translation of streamed tool-call deltas is covered.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  modelEntry,
  post,
  get,
  request,
  parseSSE,
  describeRes,
  cloudModel,
  stopClean,
} from './harness.mjs';
import { startOpenAIFake, reply } from '../fakes/openai.mjs';

const UPSTREAM_MODEL = 'gpt-4o-mini';
const UPSTREAM_KEY = 'sk-upstream-test-0123456789';

let fake;
let server;
let client;

before(async () => {
  fake = await startOpenAIFake();
  server = await startServer(
    makeConfig({
      models: [
        modelEntry(),
        cloudModel(fake, 'gpt', { api_key: UPSTREAM_KEY, upstream_model: UPSTREAM_MODEL }),
      ],
    }),
  );
  client = new Anthropic({ baseURL: server.url, apiKey: 'client-key', maxRetries: 0 });
});

after(async () => {
  if (fake) await fake.close();
  if (server) {
    await stopClean(server);
  }
});

/* A deterministic request to the local model: greedy. */
function localBody(extra = {}) {
  return {
    model: 'local',
    max_tokens: 24,
    temperature: 0,
    messages: [{ role: 'user', content: 'Tell me a story about a cat.' }],
    ...extra,
  };
}

function textOf(message) {
  return message.content
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('');
}

/* Every prompt token, however Anthropic splits them (uncached, read from and written to cache). */
function promptTokens(usage) {
  return usage.input_tokens + (usage.cache_read_input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0);
}

/* An Anthropic error body: {"type":"error","error":{"type","message"}}. */
function assertAnthropicError(res, status, type) {
  assert.equal(res.status, status, describeRes(res));
  assert.match(res.headers.get('content-type') || '', /application\/json/);
  assert.equal(res.json?.type, 'error', res.text);
  assert.equal(res.json.error?.type, type, res.text);
  assert.equal(typeof res.json.error.message, 'string', res.text);
  assert.ok(res.json.error.message.length > 0, res.text);
}

describe('Anthropic API, local model', { timeout: TEST_TIMEOUT_MS }, () => {
  it('non-streaming: a text answer, usage, and the serving headers', async () => {
    const { data: msg, response } = await client.messages.create(localBody()).withResponse();
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'local');
    assert.match(msg.id, /^msg_/);
    assert.ok(textOf(msg).length > 0, JSON.stringify(msg));
    assert.ok(['end_turn', 'max_tokens'].includes(msg.stop_reason), msg.stop_reason);
    assert.ok(msg.usage.input_tokens >= 0 && promptTokens(msg.usage) > 0, JSON.stringify(msg.usage));
    assert.ok(msg.usage.output_tokens > 0 && msg.usage.output_tokens <= 24, JSON.stringify(msg.usage));
    assert.equal(response.headers.get('x-switchboard-backend'), 'local');
    assert.equal(response.headers.get('x-switchboard-attempts'), '1');
    assert.match(response.headers.get('x-request-id') ?? '', /^req_/);
  });

  it('max_tokens ends the turn with stop_reason max_tokens', async () => {
    const msg = await client.messages.create(localBody({ max_tokens: 3 }));
    assert.equal(msg.stop_reason, 'max_tokens');
    assert.equal(msg.stop_sequence, null);
    assert.equal(msg.usage.output_tokens, 3);
  });

  it('streaming (messages.stream) gives the same text and usage as non-streaming', async () => {
    const plain = await client.messages.create(localBody());
    const stream = client.messages.stream(localBody());
    const types = [];
    stream.on('streamEvent', (ev) => types.push(ev.type));
    const final = await stream.finalMessage();
    assert.equal(textOf(final), textOf(plain));
    assert.equal(final.stop_reason, plain.stop_reason);
    assert.equal(final.usage.output_tokens, plain.usage.output_tokens);
    assert.equal(promptTokens(final.usage), promptTokens(plain.usage));
    // Anthropic's event order.
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.equal(types.at(-2), 'message_delta');
    assert.equal(types.at(-3), 'content_block_stop');
    assert.ok(types.filter((t) => t === 'content_block_delta').length >= 1, types.join(','));
  });

  it('streaming with create({stream: true}) as raw events', async () => {
    const plain = await client.messages.create(localBody({ max_tokens: 8 }));
    const events = await client.messages.create({ ...localBody({ max_tokens: 8 }), stream: true });
    let text = '';
    let stop = null;
    let usage = null;
    for await (const ev of events) {
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
      if (ev.type === 'message_delta') {
        stop = ev.delta.stop_reason;
        usage = ev.usage;
      }
    }
    assert.equal(text, textOf(plain));
    assert.equal(stop, plain.stop_reason);
    assert.equal(usage.output_tokens, plain.usage.output_tokens);
  });

  it('stop_sequences end the turn with stop_reason stop_sequence', async () => {
    const full = textOf(await client.messages.create(localBody()));
    // Three characters from the middle of the greedy answer: the answer must stop right before
    // their first occurrence.
    assert.ok(full.length >= 8, `too short to pick a stop sequence from: ${JSON.stringify(full)}`);
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const msg = await client.messages.create(localBody({ stop_sequences: [stop, 'ZZZ-never'] }));
    assert.equal(msg.stop_reason, 'stop_sequence', JSON.stringify(msg));
    assert.equal(msg.stop_sequence, stop);
    assert.equal(textOf(msg), full.slice(0, full.indexOf(stop)));
  });

  it('usage equals the OpenAI endpoint\'s for the same prompt', async () => {
    const oa = await post(server, '/v1/chat/completions', {
      model: 'local',
      max_tokens: 12,
      temperature: 0,
      messages: [{ role: 'user', content: 'Tell me a story about a dog.' }],
    });
    assert.equal(oa.status, 200, describeRes(oa));
    const an = await client.messages.create(
      localBody({ max_tokens: 12, messages: [{ role: 'user', content: 'Tell me a story about a dog.' }] }),
    );
    assert.equal(promptTokens(an.usage), oa.json.usage.prompt_tokens, JSON.stringify(an.usage));
    assert.equal(an.usage.output_tokens, oa.json.usage.completion_tokens);
    assert.equal(textOf(an), oa.json.choices[0].message.content);
  });

  it('a system prompt is accepted', async () => {
    const msg = await client.messages.create(localBody({ system: 'You tell short stories.', max_tokens: 4 }));
    assert.ok(msg.usage.output_tokens > 0);
  });

  it('the key may come as x-api-key or Authorization: Bearer, with any anthropic-version', async () => {
    const bearer = new Anthropic({ baseURL: server.url, authToken: 'token-123', maxRetries: 0 });
    const msg = await bearer.messages.create(localBody({ max_tokens: 2 }));
    assert.equal(msg.usage.output_tokens, 2);
    const res = await post(server, '/v1/messages', localBody({ max_tokens: 2 }), {
      headers: { 'x-api-key': 'k', 'anthropic-version': '2099-01-01' },
    });
    assert.equal(res.status, 200, describeRes(res));
  });

  it('GET /v1/models answers in Anthropic\'s shape for Anthropic clients, OpenAI\'s otherwise', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    assert.deepEqual(ids, ['local', 'gpt']);
    assert.equal(page.data[0].type, 'model');
    const oa = await get(server, '/v1/models');
    assert.equal(oa.json.object, 'list');
    assert.deepEqual(oa.json.data.map((m) => m.id), ['local', 'gpt']);
  });
});

describe('Anthropic API errors', { timeout: TEST_TIMEOUT_MS }, () => {
  it('a missing max_tokens is 400 invalid_request_error in Anthropic\'s shape', async () => {
    const body = { model: 'local', messages: [{ role: 'user', content: 'Hi' }] };
    await assert.rejects(client.messages.create(body), (err) => {
      assert.ok(err instanceof Anthropic.BadRequestError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.error?.type, 'error');
      assert.equal(err.error?.error?.type, 'invalid_request_error');
      assert.match(err.error.error.message, /max_tokens/);
      return true;
    });
    assertAnthropicError(await post(server, '/v1/messages', body), 400, 'invalid_request_error');
  });

  it('an unknown model is 404 not_found_error', async () => {
    await assert.rejects(client.messages.create({ ...localBody(), model: 'claude-nope' }), (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError, String(err));
      assert.equal(err.error?.error?.type, 'not_found_error');
      assert.match(err.error.error.message, /claude-nope/);
      return true;
    });
  });

  it('malformed JSON, a wrong method and an unknown path under /v1/messages keep the shape', async () => {
    assertAnthropicError(await post(server, '/v1/messages', '{"model":'), 400, 'invalid_request_error');
    const wrong = await request(server, 'GET', '/v1/messages');
    assert.equal(wrong.status, 405, describeRes(wrong));
    assert.equal(wrong.json?.type, 'error', wrong.text);
    assertAnthropicError(await post(server, '/v1/messages/count_tokens', localBody()), 404, 'not_found_error');
  });
});

describe('Anthropic API in front of an OpenAI-compatible backend', { timeout: TEST_TIMEOUT_MS }, () => {
  const TOOLS = [
    {
      name: 'get_weather',
      description: 'Weather by city',
      input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
    { name: 'get_time', input_schema: { type: 'object', properties: { tz: { type: 'string' } } } },
  ];
  /* Two calls whose arguments arrive in small pieces, as OpenAI streams them. */
  const CALLS = [
    { id: 'call_A1', name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}', pieces: ['{"ci', 'ty":"Pa', 'ris","unit"', ':"celsius"}'] },
    { id: 'call_B2', name: 'get_time', arguments: '{"tz":"Europe/Paris"}', pieces: ['{"tz":', '"Europe/Paris"}'] },
  ];
  const USAGE = { prompt_tokens: 30, completion_tokens: 9, cached_tokens: 10 };
  const body = {
    model: 'gpt',
    max_tokens: 100,
    tools: TOOLS,
    messages: [{ role: 'user', content: 'Weather and time in Paris?' }],
  };

  it('non-streaming: tool_use blocks with complete inputs, stop_reason tool_use, usage', async () => {
    fake.push(reply({ text: 'Let me check.', toolCalls: CALLS, usage: USAGE }));
    const { data: msg, response } = await client.messages.create(body).withResponse();
    assert.equal(response.headers.get('x-switchboard-backend'), 'gpt');
    assert.equal(response.headers.get('x-switchboard-attempts'), '1');
    assert.equal(msg.stop_reason, 'tool_use');
    assert.equal(textOf(msg), 'Let me check.');
    const uses = msg.content.filter((b) => b.type === 'tool_use');
    assert.deepEqual(
      uses.map((u) => ({ id: u.id, name: u.name, input: u.input })),
      CALLS.map((c) => ({ id: c.id, name: c.name, input: JSON.parse(c.arguments) })),
    );
    assert.equal(msg.usage.input_tokens, 20);
    assert.equal(msg.usage.cache_read_input_tokens, 10);
    assert.equal(msg.usage.output_tokens, 9);
    // Upstream it went in OpenAI's words.
    const sent = fake.last().json;
    assert.equal(fake.last().path, '/v1/chat/completions');
    assert.equal(sent.model, UPSTREAM_MODEL);
    assert.deepEqual(sent.tools, [
      { type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: TOOLS[0].input_schema } },
      { type: 'function', function: { name: 'get_time', parameters: TOOLS[1].input_schema } },
    ]);
  });

  it('streaming: input_json_delta pieces arrive in order and add up to each call\'s input', async () => {
    fake.push(reply({ toolCalls: CALLS, usage: USAGE }));
    const stream = client.messages.stream(body);
    const blocks = []; // per content block index: { type, id, name, json }
    let order = [];
    stream.on('streamEvent', (ev) => {
      order.push(ev.type);
      if (ev.type === 'content_block_start') {
        assert.equal(ev.index, blocks.length, 'blocks start in order');
        blocks.push({ type: ev.content_block.type, id: ev.content_block.id, name: ev.content_block.name, json: '', open: true });
      } else if (ev.type === 'content_block_delta') {
        const b = blocks[ev.index];
        assert.ok(b?.open, `a delta for block ${ev.index} that is not open`);
        assert.equal(ev.index, blocks.length - 1, 'a delta for an earlier block after a later one began');
        if (ev.delta.type === 'input_json_delta') b.json += ev.delta.partial_json;
      } else if (ev.type === 'content_block_stop') {
        blocks[ev.index].open = false;
      }
    });
    const final = await stream.finalMessage();
    const tools = blocks.filter((b) => b.type === 'tool_use');
    assert.deepEqual(
      tools.map((b) => ({ id: b.id, name: b.name, input: JSON.parse(b.json) })),
      CALLS.map((c) => ({ id: c.id, name: c.name, input: JSON.parse(c.arguments) })),
    );
    assert.ok(blocks.every((b) => !b.open), 'every block was closed');
    // The SDK's own accumulation agrees.
    assert.deepEqual(
      final.content.filter((b) => b.type === 'tool_use').map((u) => u.input),
      CALLS.map((c) => JSON.parse(c.arguments)),
    );
    assert.equal(final.stop_reason, 'tool_use');
    assert.equal(final.usage.output_tokens, 9);
    assert.equal(promptTokens(final.usage), 30);
    assert.equal(order.at(-1), 'message_stop');
  });

  it('the tool results go back upstream as OpenAI tool messages', async () => {
    fake.push(reply({ text: 'It is 21 degrees at 14:00.' }));
    const msg = await client.messages.create({
      ...body,
      messages: [
        { role: 'user', content: 'Weather and time in Paris?' },
        {
          role: 'assistant',
          content: CALLS.map((c) => ({ type: 'tool_use', id: c.id, name: c.name, input: JSON.parse(c.arguments) })),
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_A1', content: '21 C' },
            { type: 'tool_result', tool_use_id: 'call_B2', content: '14:00' },
          ],
        },
      ],
    });
    assert.equal(textOf(msg), 'It is 21 degrees at 14:00.');
    assert.equal(msg.stop_reason, 'end_turn');
    const sent = fake.last().json.messages;
    assert.deepEqual(
      sent[1].tool_calls.map((t) => ({ id: t.id, name: t.function.name, args: JSON.parse(t.function.arguments) })),
      CALLS.map((c) => ({ id: c.id, name: c.name, args: JSON.parse(c.arguments) })),
    );
    assert.deepEqual(
      sent.filter((m) => m.role === 'tool').map((m) => [m.tool_call_id, m.content]),
      [
        ['call_A1', '21 C'],
        ['call_B2', '14:00'],
      ],
    );
  });

  it('a streamed answer parsed without the SDK has Anthropic\'s SSE framing', async () => {
    fake.push(reply({ text: 'Hi there.' }));
    const res = await post(server, '/v1/messages', { ...body, tools: undefined, stream: true });
    assert.equal(res.status, 200, describeRes(res));
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const events = parseSSE(res.text);
    for (const ev of events) assert.equal(JSON.parse(ev.data).type, ev.event, 'event names match data types');
    assert.equal(events.at(-1).event, 'message_stop');
  });
});
