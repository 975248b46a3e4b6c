// Ollama's native API end to end, driven by the official `ollama` npm client unchanged: chat
// (NDJSON streaming and stream:false), generate, embed, list (tags), show, ps, version and the
// root heartbeat against the local model; errors in Ollama's {"error": "..."} shape; and a model
// served by an OpenAI-compatible backend (tests/fakes/openai.mjs) with a tool call through
// /api/chat.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  modelEntry,
  post,
  request,
  describeRes,
  cloudModel,
  stopClean,
} from './harness.mjs';
import { startOpenAIFake, reply } from '../fakes/openai.mjs';

let fake;
let server;
let ollama;

before(async () => {
  fake = await startOpenAIFake();
  server = await startServer(
    makeConfig({
      models: [
        modelEntry(),
        modelEntry({ name: 'embedder', embeddings: true }),
        cloudModel(fake),
        cloudModel(fake, 'gpt-embed', { upstream_model: 'text-embedding-3-small', embeddings: true }),
      ],
    }),
  );
  ollama = new Ollama({ host: server.url });
});

after(async () => {
  if (fake) await fake.close();
  if (server) {
    await stopClean(server);
  }
});

/* Greedy and short: every answer is the same for the same input. */
const OPTIONS = { temperature: 0, seed: 42, num_predict: 16 };
const MESSAGES = [{ role: 'user', content: 'Tell me a story about a cat.' }];

/* An Ollama error: the status and {"error": "..."} with nothing else. */
function assertOllamaError(res, status, pattern) {
  assert.equal(res.status, status, describeRes(res));
  assert.match(res.headers.get('content-type') || '', /application\/json/);
  assert.deepEqual(Object.keys(res.json ?? {}), ['error'], res.text);
  assert.equal(typeof res.json.error, 'string');
  if (pattern) assert.match(res.json.error, pattern);
}

describe('Ollama API, local model', { timeout: TEST_TIMEOUT_MS }, () => {
  it('chat with stream: false returns one whole answer', async () => {
    const res = await ollama.chat({ model: 'local', messages: MESSAGES, options: OPTIONS, stream: false });
    assert.equal(res.model, 'local');
    const tagged = await ollama.chat({ model: 'local:latest', messages: MESSAGES, options: OPTIONS, stream: false });
    assert.equal(tagged.message.content, res.message.content, 'name:latest is the model name');
    assert.equal(res.message.role, 'assistant');
    assert.ok(res.message.content.length > 0);
    assert.equal(res.done, true);
    assert.ok(['stop', 'length'].includes(res.done_reason), res.done_reason);
    assert.ok(res.prompt_eval_count > 0);
    assert.ok(res.eval_count > 0 && res.eval_count <= 16);
    assert.ok(Number.isInteger(res.total_duration) && res.total_duration > 0);
    assert.match(res.created_at.toString(), /\d{4}-\d\d-\d\d/);
  });

  it('chat streams NDJSON that adds up to the same answer', async () => {
    const whole = await ollama.chat({ model: 'local', messages: MESSAGES, options: OPTIONS, stream: false });
    const parts = await ollama.chat({ model: 'local', messages: MESSAGES, options: OPTIONS, stream: true });
    let text = '';
    let last = null;
    let n = 0;
    for await (const part of parts) {
      text += part.message.content;
      last = part;
      n++;
    }
    assert.ok(n > 1, 'more than one line');
    assert.equal(text, whole.message.content);
    assert.equal(last.done, true);
    assert.equal(last.done_reason, whole.done_reason);
    assert.equal(last.eval_count, whole.eval_count);
    assert.equal(last.prompt_eval_count, whole.prompt_eval_count);
  });

  it('chat streams by default when the request does not say (raw HTTP)', async () => {
    const res = await post(server, '/api/chat', { model: 'local', messages: MESSAGES, options: OPTIONS });
    assert.equal(res.status, 200, describeRes(res));
    assert.match(res.headers.get('content-type'), /^application\/x-ndjson/);
    const lines = res.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.length > 1);
    assert.equal(lines.at(-1).done, true);
    assert.equal(res.headers.get('x-switchboard-backend'), 'local');
    assert.equal(res.headers.get('x-switchboard-attempts'), '1');
  });

  it('generate: whole and streamed answers agree', async () => {
    const whole = await ollama.generate({ model: 'local', prompt: 'Once upon a time', options: OPTIONS });
    assert.equal(whole.model, 'local');
    assert.ok(whole.response.length > 0);
    assert.equal(whole.done, true);
    assert.ok(whole.eval_count > 0);
    const parts = await ollama.generate({ model: 'local', prompt: 'Once upon a time', options: OPTIONS, stream: true });
    let text = '';
    for await (const p of parts) text += p.response;
    assert.equal(text, whole.response);
    const raw = await ollama.generate({ model: 'local', prompt: 'Once upon a time', raw: true, options: OPTIONS });
    assert.ok(raw.response.length > 0);
    assert.equal(raw.done, true);
  });

  it('embed: one vector per input from an embeddings model', async () => {
    const res = await ollama.embed({ model: 'embedder', input: ['a cat', 'a dog'] });
    assert.equal(res.model, 'embedder');
    assert.equal(res.embeddings.length, 2);
    assert.ok(res.embeddings[0].length > 0);
    assert.equal(res.embeddings[0].length, res.embeddings[1].length);
    assert.ok(res.embeddings[0].every((x) => Number.isFinite(x)));
  });

  it('list, show, ps and version', async () => {
    const list = await ollama.list();
    assert.deepEqual(list.models.map((m) => m.name), ['local', 'embedder', 'gpt', 'gpt-embed']);
    const local = list.models[0];
    assert.equal(local.model, 'local');
    assert.equal(local.details.format, 'gguf');
    assert.ok(local.size > 0);

    const show = await ollama.show({ model: 'local:latest' }); // Ollama's default tag
    assert.ok(show.capabilities.includes('completion'), JSON.stringify(show.capabilities));
    assert.equal(show.details.format, 'gguf');
    assert.match(show.modelfile, /FROM local/);

    const ps = await ollama.ps();
    assert.ok(ps.models.some((m) => m.name === 'local'), JSON.stringify(ps));

    const v = await ollama.version();
    assert.match(v.version, /^\d+\.\d+\.\d+$/);
  });

  it('GET and HEAD / answer "Ollama is running"', async () => {
    const res = await request(server, 'GET', '/');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'Ollama is running');
    const head = await request(server, 'HEAD', '/');
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
  });
});

describe('Ollama API errors', { timeout: TEST_TIMEOUT_MS }, () => {
  it('an unknown model is 404 with Ollama\'s message, through the client and raw', async () => {
    await assert.rejects(ollama.chat({ model: 'llama9', messages: MESSAGES, stream: false }), (err) => {
      assert.equal(err.name, 'ResponseError');
      assert.equal(err.status_code, 404);
      assert.equal(err.error, "model 'llama9' not found");
      return true;
    });
    await assert.rejects(ollama.show({ model: 'llama9' }), (err) => {
      assert.equal(err.status_code, 404);
      assert.equal(err.error, "model 'llama9' not found");
      return true;
    });
    assertOllamaError(await post(server, '/api/generate', { model: 'llama9', prompt: 'x' }), 404, /llama9/);
  });

  it('bad bodies, wrong methods and unknown /api paths keep the shape', async () => {
    assertOllamaError(await post(server, '/api/chat', '{"model":'), 400);
    assertOllamaError(await post(server, '/api/chat', { model: 'local', messages: 'nope' }), 400);
    assertOllamaError(await request(server, 'GET', '/api/chat'), 405);
    assertOllamaError(await post(server, '/api/pull', { model: 'x' }), 404, /\/api\/pull/);
    // A chat model asked for embeddings: refused by the backend, in Ollama's shape.
    const wrong = await post(server, '/api/embed', { model: 'local', input: 'x' });
    assert.ok(wrong.status >= 400, describeRes(wrong));
    assertOllamaError(wrong, wrong.status);
  });
});

describe('Ollama API in front of an OpenAI-compatible backend', { timeout: TEST_TIMEOUT_MS }, () => {
  const TOOLS = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        description: 'Weather by city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    },
  ];
  const CALL = { id: 'call_W1', name: 'get_weather', arguments: '{"city":"Paris"}', pieces: ['{"ci', 'ty":', '"Paris"}'] };

  it('a streamed tool call arrives whole, with its arguments as an object', async () => {
    fake.push(reply({ toolCalls: [CALL], usage: { prompt_tokens: 15, completion_tokens: 5 } }));
    const parts = await ollama.chat({
      model: 'gpt',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: TOOLS,
      stream: true,
    });
    const calls = [];
    let last = null;
    for await (const p of parts) {
      calls.push(...(p.message.tool_calls ?? []));
      last = p;
    }
    assert.deepEqual(
      calls.map((c) => ({ name: c.function.name, arguments: c.function.arguments })),
      [{ name: 'get_weather', arguments: { city: 'Paris' } }],
    );
    assert.equal(last.done, true);
    assert.equal(last.prompt_eval_count, 15);
    assert.equal(last.eval_count, 5);
    // Upstream in OpenAI's words.
    const sent = fake.last().json;
    assert.equal(sent.model, 'gpt-4o-mini');
    assert.deepEqual(sent.tools, TOOLS);
  });

  it('stream: false, then the tool result goes back upstream with the call\'s id', async () => {
    fake.push(reply({ toolCalls: [CALL] }));
    const res = await ollama.chat({
      model: 'gpt',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: TOOLS,
      stream: false,
    });
    assert.deepEqual(
      res.message.tool_calls.map((c) => ({ name: c.function.name, arguments: c.function.arguments })),
      [{ name: 'get_weather', arguments: { city: 'Paris' } }],
    );

    fake.push(reply({ text: 'It is 21 C in Paris.' }));
    const next = await ollama.chat({
      model: 'gpt',
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        res.message,
        { role: 'tool', content: '21 C', tool_name: 'get_weather' },
      ],
      tools: TOOLS,
      stream: false,
    });
    assert.equal(next.message.content, 'It is 21 C in Paris.');
    const sent = fake.last().json.messages;
    assert.equal(sent[1].tool_calls.length, 1);
    assert.deepEqual(JSON.parse(sent[1].tool_calls[0].function.arguments), { city: 'Paris' });
    assert.equal(sent[2].role, 'tool');
    assert.equal(sent[2].tool_call_id, sent[1].tool_calls[0].id);
    assert.equal(sent[2].content, '21 C');
  });

  it('embed through the OpenAI backend', async () => {
    fake.push(reply({ embedding: [0.5, -0.25, 1] }));
    const res = await ollama.embed({ model: 'gpt-embed', input: 'a cat' });
    assert.equal(res.embeddings.length, 1);
    assert.deepEqual(res.embeddings[0].map((x) => Math.round(x * 100) / 100), [0.5, -0.25, 1]);
    assert.equal(fake.last().path, '/v1/embeddings');
  });
});
