// The inbound-SDK x backend matrix: ONE switchboard server with five models (the local model and
// one model on each of the openai / anthropic / bedrock / ollama backends, each in front of its
// fake), driven by the three official client libraries (openai, @anthropic-ai/sdk, ollama), each
// streamed and not. For every inbound SDK x backend pair:
//   - text: what the fake was scripted to send (local: streamed text == non-streamed text, greedy);
//   - usage: the same streamed and not (and, for cloud backends, the fake's scripted counts);
//   - cloud backends only: one tool call, split upstream into several argument deltas (Ollama
//     sends calls whole, as the real one does), arrives as exactly one complete call with the
//     right name and arguments, streamed and not.
// No sleeps, no timing thresholds: every step waits on a response.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import { TEST_TIMEOUT_MS, startServer, makeConfig, modelEntry } from './harness.mjs';
import * as openaiFake from '../fakes/openai.mjs';
import * as anthropicFake from '../fakes/anthropic.mjs';
import * as bedrockFake from '../fakes/bedrock.mjs';
import * as ollamaFake from '../fakes/ollama.mjs';

const ANTHROPIC_KEY = 'sk-ant-matrix-0123456789';
const OPENAI_KEY = 'sk-openai-matrix-0123456789';
const CREDS = {
  accessKeyId: 'AKIDFAKEBEDROCK01',
  secretAccessKey: 'fakeSecret/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'FwoGZXIvYXdzEFAKE//session+token=',
};
const REGION = 'eu-west-3';
const once = { retries: { max: 0 }, breaker: { failures: 1000 } };

const PROMPT = 'Tell me a story about a cat.';
const MAX_TOKENS = 24;

/* The tool call every cloud backend is scripted to make, and the tool the clients offer. */
const TOOL_NAME = 'get_weather';
const TOOL_ARGS = { city: 'Paris', days: [1, 2], unit: 'celsius' };
const TOOL_JSON = JSON.stringify(TOOL_ARGS);
/* Several argument deltas, cut mid-token on purpose. */
const TOOL_PIECES = [TOOL_JSON.slice(0, 5), TOOL_JSON.slice(5, 14), TOOL_JSON.slice(14, 27), TOOL_JSON.slice(27)];
assert.equal(TOOL_PIECES.join(''), TOOL_JSON);
assert.ok(TOOL_PIECES.every((p) => p.length > 0));
const TOOL_SCHEMA = {
  type: 'object',
  properties: { city: { type: 'string' }, days: { type: 'array', items: { type: 'integer' } }, unit: { type: 'string' } },
  required: ['city'],
};

/* ---------------------------------------------------------------------------------------------
 * Backends: how to script each fake, and what usage the client should then see (as prompt /
 * completion token totals).
 * ------------------------------------------------------------------------------------------- */

const fakes = {};

const BACKENDS = [
  { name: 'local', model: 'local', local: true },
  {
    name: 'openai',
    model: 'm-openai',
    entry: () => ({ name: 'm-openai', backend: 'openai', base_url: `${fakes.openai.url}/v1`, api_key: OPENAI_KEY, upstream_model: 'gpt-4o-mini', ...once }),
    scriptText: (text) => openaiFake.reply({ text, usage: { prompt_tokens: 13, completion_tokens: 6 } }),
    scriptTool: () =>
      openaiFake.reply({
        toolCalls: [{ id: 'call_matrix1', name: TOOL_NAME, arguments: TOOL_JSON, pieces: TOOL_PIECES }],
        usage: { prompt_tokens: 13, completion_tokens: 6 },
      }),
    usage: { prompt: 13, completion: 6 },
  },
  {
    name: 'anthropic',
    model: 'm-anthropic',
    entry: () => ({ name: 'm-anthropic', backend: 'anthropic', base_url: fakes.anthropic.url, api_key: ANTHROPIC_KEY, upstream_model: 'claude-3-5-haiku-latest', ...once }),
    scriptText: (text) => anthropicFake.reply({ apiKey: ANTHROPIC_KEY, text, usage: { input_tokens: 21, output_tokens: 9 } }),
    scriptTool: () =>
      anthropicFake.reply({
        apiKey: ANTHROPIC_KEY,
        toolCalls: [{ id: 'toolu_matrix1', name: TOOL_NAME, input: TOOL_ARGS, pieces: TOOL_PIECES }],
        usage: { input_tokens: 21, output_tokens: 9 },
      }),
    usage: { prompt: 21, completion: 9 },
  },
  {
    name: 'bedrock',
    model: 'm-bedrock',
    entry: () => ({
      name: 'm-bedrock',
      backend: 'bedrock',
      base_url: fakes.bedrock.url,
      region: REGION,
      upstream_model: 'anthropic.claude-3-haiku-20240307-v1:0',
      aws_access_key_id: CREDS.accessKeyId,
      aws_secret_access_key: CREDS.secretAccessKey,
      aws_session_token: CREDS.sessionToken,
      ...once,
    }),
    scriptText: (text) => bedrockFake.reply({ text, usage: { inputTokens: 15, outputTokens: 7 } }),
    scriptTool: () =>
      bedrockFake.reply({
        toolCalls: [{ id: 'tooluse_matrix1', name: TOOL_NAME, input: TOOL_ARGS, pieces: TOOL_PIECES }],
        usage: { inputTokens: 15, outputTokens: 7 },
      }),
    usage: { prompt: 15, completion: 7 },
  },
  {
    name: 'ollama',
    model: 'm-ollama',
    entry: () => ({ name: 'm-ollama', backend: 'ollama', base_url: fakes.ollama.url, upstream_model: 'llama3.2', ...once }),
    scriptText: (text) => ollamaFake.reply({ text, promptEvalCount: 26, evalCount: 8 }),
    // Ollama sends a tool call whole, in one line: there are no argument deltas to split.
    scriptTool: () => ollamaFake.reply({ toolCalls: [{ name: TOOL_NAME, arguments: TOOL_ARGS }], promptEvalCount: 26, evalCount: 8 }),
    usage: { prompt: 26, completion: 8 },
  },
];

/* ---------------------------------------------------------------------------------------------
 * Inbound SDKs: one chat call, streamed or not, reduced to { text, usage, toolCalls } where usage
 * is { prompt, completion } and toolCalls is [{ name, args (parsed) }].
 * ------------------------------------------------------------------------------------------- */

let server;
let clients;

const SDKS = [
  {
    name: 'openai',
    async call(model, { stream, tools }) {
      const body = {
        model,
        messages: [{ role: 'user', content: PROMPT }],
        max_tokens: MAX_TOKENS,
        temperature: 0,
      };
      if (tools) body.tools = [{ type: 'function', function: { name: TOOL_NAME, description: 'Weather by city', parameters: TOOL_SCHEMA } }];
      if (!stream) {
        const r = await clients.openai.chat.completions.create(body);
        assert.equal(r.choices.length, 1);
        const m = r.choices[0].message;
        return {
          text: m.content ?? '',
          usage: { prompt: r.usage.prompt_tokens, completion: r.usage.completion_tokens },
          toolCalls: (m.tool_calls ?? []).map((tc) => ({ id: tc.id, name: tc.function.name, args: JSON.parse(tc.function.arguments) })),
        };
      }
      const s = await clients.openai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
      let text = '';
      let usage = null;
      const calls = new Map(); // index -> { id, name, args (string) }, in first-seen order
      for await (const c of s) {
        if (c.usage) {
          assert.equal(usage, null, 'usage sent twice');
          usage = { prompt: c.usage.prompt_tokens, completion: c.usage.completion_tokens };
        }
        for (const ch of c.choices ?? []) {
          text += ch.delta?.content ?? '';
          for (const tc of ch.delta?.tool_calls ?? []) {
            if (!calls.has(tc.index)) {
              assert.ok(tc.id, `first delta of tool call ${tc.index} has no id`);
              assert.ok(tc.function?.name, `first delta of tool call ${tc.index} has no name`);
              calls.set(tc.index, { id: tc.id, name: tc.function.name, args: '' });
            } else {
              assert.ok(!tc.function?.name, `tool call ${tc.index} renamed mid-stream`);
            }
            calls.get(tc.index).args += tc.function?.arguments ?? '';
          }
        }
      }
      assert.ok(usage, 'no usage chunk with stream_options.include_usage');
      return { text, usage, toolCalls: [...calls.values()].map((c) => ({ id: c.id, name: c.name, args: JSON.parse(c.args) })) };
    },
  },
  {
    name: 'anthropic',
    async call(model, { stream, tools }) {
      const body = {
        model,
        max_tokens: MAX_TOKENS,
        temperature: 0,
        messages: [{ role: 'user', content: PROMPT }],
      };
      if (tools) body.tools = [{ name: TOOL_NAME, description: 'Weather by city', input_schema: TOOL_SCHEMA }];
      if (!stream) {
        const r = await clients.anthropic.messages.create(body);
        return {
          text: r.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
          usage: {
            prompt: r.usage.input_tokens + (r.usage.cache_read_input_tokens ?? 0) + (r.usage.cache_creation_input_tokens ?? 0),
            completion: r.usage.output_tokens,
          },
          toolCalls: r.content.filter((b) => b.type === 'tool_use').map((b) => ({ id: b.id, name: b.name, args: b.input })),
        };
      }
      const s = await clients.anthropic.messages.create({ ...body, stream: true });
      let text = '';
      let prompt = null;
      let completion = null;
      const blocks = new Map(); // index -> block
      const order = [];
      let stopped = false;
      for await (const ev of s) {
        assert.ok(!stopped, `event after message_stop: ${ev.type}`);
        if (ev.type === 'message_start') {
          const u = ev.message.usage;
          prompt = u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
          completion = u.output_tokens;
        } else if (ev.type === 'content_block_start') {
          assert.ok(!blocks.has(ev.index), `content block ${ev.index} started twice`);
          const b = { type: ev.content_block.type, id: ev.content_block.id, name: ev.content_block.name, json: '', open: true };
          blocks.set(ev.index, b);
          order.push(b);
        } else if (ev.type === 'content_block_delta') {
          const b = blocks.get(ev.index);
          assert.ok(b?.open, `delta for a block not open: ${ev.index}`);
          if (ev.delta.type === 'text_delta') text += ev.delta.text;
          else if (ev.delta.type === 'input_json_delta') b.json += ev.delta.partial_json;
        } else if (ev.type === 'content_block_stop') {
          blocks.get(ev.index).open = false;
        } else if (ev.type === 'message_delta') {
          if (ev.usage?.output_tokens != null) completion = ev.usage.output_tokens;
          if (ev.usage?.input_tokens != null) {
            const u = ev.usage;
            prompt = u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
          }
        } else if (ev.type === 'message_stop') {
          stopped = true;
        }
      }
      assert.ok(stopped, 'no message_stop');
      assert.ok(order.every((b) => !b.open), 'a content block was never stopped');
      return {
        text,
        usage: { prompt, completion },
        toolCalls: order.filter((b) => b.type === 'tool_use').map((b) => ({ id: b.id, name: b.name, args: JSON.parse(b.json === '' ? '{}' : b.json) })),
      };
    },
  },
  {
    name: 'ollama',
    async call(model, { stream, tools }) {
      const body = {
        model,
        messages: [{ role: 'user', content: PROMPT }],
        options: { temperature: 0, num_predict: MAX_TOKENS },
      };
      if (tools) body.tools = [{ type: 'function', function: { name: TOOL_NAME, description: 'Weather by city', parameters: TOOL_SCHEMA } }];
      if (!stream) {
        const r = await clients.ollama.chat({ ...body, stream: false });
        assert.equal(r.done, true);
        return {
          text: r.message.content ?? '',
          usage: { prompt: r.prompt_eval_count, completion: r.eval_count },
          toolCalls: (r.message.tool_calls ?? []).map((tc) => ({ name: tc.function.name, args: tc.function.arguments })),
        };
      }
      const parts = await clients.ollama.chat({ ...body, stream: true });
      let text = '';
      const calls = [];
      let last = null;
      for await (const p of parts) {
        assert.ok(!last?.done, 'a part after done');
        text += p.message?.content ?? '';
        calls.push(...(p.message?.tool_calls ?? []));
        last = p;
      }
      assert.equal(last?.done, true, 'stream ended without done');
      return {
        text,
        usage: { prompt: last.prompt_eval_count, completion: last.eval_count },
        toolCalls: calls.map((tc) => ({ name: tc.function.name, args: tc.function.arguments })),
      };
    },
  },
];

/* ---------------------------------------------------------------------------------------------
 * One server, five models
 * ------------------------------------------------------------------------------------------- */

before(async () => {
  fakes.openai = await openaiFake.startOpenAIFake();
  fakes.anthropic = await anthropicFake.startAnthropicFake({ apiKey: ANTHROPIC_KEY });
  fakes.bedrock = await bedrockFake.startBedrockFake({ credentials: CREDS, region: REGION });
  fakes.ollama = await ollamaFake.startOllamaFake();
  server = await startServer(
    makeConfig({ models: BACKENDS.map((b) => (b.local ? modelEntry({ name: b.model }) : b.entry())) }),
  );
  clients = {
    openai: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-client', maxRetries: 0 }),
    anthropic: new Anthropic({ baseURL: server.url, apiKey: 'client-key', maxRetries: 0 }),
    ollama: new Ollama({ host: server.url }),
  };
});

after(async () => {
  for (const f of Object.values(fakes)) await f.close();
  if (server) {
    const st = await server.stop();
    assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}\n${server.output().slice(-3000)}`);
    assert.doesNotMatch(server.output(), /Sanitizer|runtime error/);
  }
});

/* Runs fn with the server's log attached to any failure. */
async function withLog(fn) {
  try {
    await fn();
  } catch (err) {
    err.message += `\n--- switchboard log (tail) ---\n${server.output().slice(-3000)}`;
    throw err;
  }
}

/* ---------------------------------------------------------------------------------------------
 * The matrix
 * ------------------------------------------------------------------------------------------- */

const CASES = [];
for (const sdk of SDKS) {
  for (const backend of BACKENDS) {
    CASES.push({ sdk, backend, kind: 'text' });
    if (!backend.local) CASES.push({ sdk, backend, kind: 'tool' });
  }
}

describe('inbound SDK x backend matrix', { timeout: TEST_TIMEOUT_MS }, () => {
  for (const { sdk, backend, kind } of CASES) {
    const title = `${sdk.name} SDK -> ${backend.name} backend: ${kind}, streamed and not`;

    if (kind === 'text' && backend.local) {
      it(title, () =>
        withLog(async () => {
          const plain = await sdk.call(backend.model, { stream: false });
          const streamed = await sdk.call(backend.model, { stream: true });
          assert.ok(plain.text.length > 0, 'empty completion from the local model');
          assert.equal(streamed.text, plain.text, 'streamed text differs from non-streamed text at temperature 0');
          assert.deepEqual(streamed.usage, plain.usage, 'usage differs between stream and non-stream');
          assert.ok(plain.usage.prompt > 0 && plain.usage.completion > 0, `usage ${JSON.stringify(plain.usage)}`);
          assert.deepEqual(plain.toolCalls, []);
          assert.deepEqual(streamed.toolCalls, []);
        }),
      );
      continue;
    }

    const fake = () => fakes[backend.name];

    if (kind === 'text') {
      it(title, () =>
        withLog(async () => {
          const text = `Matrix ${sdk.name} via ${backend.name}: one two three, done.`;
          for (const stream of [false, true]) {
            fake().push(backend.scriptText(text));
            const before = fake().requests.length;
            const r = await sdk.call(backend.model, { stream });
            assert.equal(fake().requests.length, before + 1, 'exactly one upstream request');
            assert.equal(r.text, text, `stream=${stream}: text`);
            assert.deepEqual(r.usage, backend.usage, `stream=${stream}: usage`);
            assert.deepEqual(r.toolCalls, [], `stream=${stream}: no tool calls`);
          }
        }),
      );
      continue;
    }

    it(title, () =>
      withLog(async () => {
        for (const stream of [false, true]) {
          fake().push(backend.scriptTool());
          const before = fake().requests.length;
          const r = await sdk.call(backend.model, { stream, tools: true });
          assert.equal(fake().requests.length, before + 1, 'exactly one upstream request');
          assert.equal(r.toolCalls.length, 1, `stream=${stream}: exactly one tool call, got ${JSON.stringify(r.toolCalls)}`);
          assert.equal(r.toolCalls[0].name, TOOL_NAME, `stream=${stream}: tool name`);
          assert.deepEqual(r.toolCalls[0].args, TOOL_ARGS, `stream=${stream}: tool arguments`);
          if (sdk.name !== 'ollama') assert.ok(r.toolCalls[0].id, `stream=${stream}: tool call id`);
          assert.equal(r.text, '', `stream=${stream}: no text`);
          assert.deepEqual(r.usage, backend.usage, `stream=${stream}: usage`);
        }
      }),
    );
  }
});
