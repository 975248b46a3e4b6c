// GET /metrics after real traffic: the exposition passes `promtool check metrics` (Debian package
// prometheus), and the request and token counters equal what the responses' usage said, per model
// and backend, across the OpenAI, Anthropic and Ollama APIs, streamed and not, against the local
// model and an OpenAI-compatible fake (priced by a config override), errors included.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  modelEntry,
  post,
  postStream,
  get,
  describeRes,
  cloudModel,
  stopClean,
  parseMetrics,
} from './harness.mjs';
import { startOpenAIFake, reply } from '../fakes/openai.mjs';

const PROMTOOL = '/usr/bin/promtool';

let fake;
let server;

before(async () => {
  fake = await startOpenAIFake();
  server = await startServer(
    makeConfig({
      models: [
        modelEntry(),
        cloudModel(fake),
      ],
      // Round prices, so the expected cost is exact: 1 u$ per input token, 0.5 per cached input
      // token, 2 per completion token.
      extra: {
        pricing: [{ model: 'gpt-4o-mini', input_per_mtok: '1', cached_input_per_mtok: '0.5', output_per_mtok: '2' }],
      },
    }),
  );
});

after(async () => {
  if (fake) await fake.close();
  if (server) {
    await stopClean(server);
  }
});

/* The value of the one sample named name whose labels include want (0 when there is none). */
function sample(samples, name, want = {}) {
  const hits = samples.filter(
    (s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(want).length,
  );
  assert.ok(hits.length <= 1, `${name} ${JSON.stringify(want)} matches ${hits.length} samples`);
  return hits.length ? hits[0].value : 0;
}

/* Counts per model, summed from the responses the clients got. */
const expected = {
  local: { requests: 0, prompt: 0, completion: 0 },
  gpt: { requests: 0, prompt: 0, cached: 0, completion: 0 },
};

function addLocal(prompt, completion) {
  expected.local.requests++;
  expected.local.prompt += prompt;
  expected.local.completion += completion;
}

describe('metrics', { timeout: TEST_TIMEOUT_MS }, () => {
  it('traffic through every API', async () => {
    const chat = { model: 'local', messages: [{ role: 'user', content: 'Tell me a story.' }], temperature: 0, max_tokens: 12 };

    let res = await post(server, '/v1/chat/completions', chat);
    assert.equal(res.status, 200, describeRes(res));
    addLocal(res.json.usage.prompt_tokens, res.json.usage.completion_tokens);

    res = await postStream(server, '/v1/chat/completions', { ...chat, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200, describeRes(res));
    const usage = res.stream.chunks.find((c) => c.usage)?.usage;
    assert.ok(usage, res.text);
    addLocal(usage.prompt_tokens, usage.completion_tokens);

    res = await post(server, '/v1/messages', { ...chat, max_tokens: 7 });
    assert.equal(res.status, 200, describeRes(res));
    const u = res.json.usage;
    addLocal(u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens, u.output_tokens);

    res = await post(server, '/api/chat', { model: 'local', messages: chat.messages, stream: false, options: { temperature: 0, num_predict: 5 } });
    assert.equal(res.status, 200, describeRes(res));
    addLocal(res.json.prompt_eval_count, res.json.eval_count);

    fake.push(reply({ text: 'Hi.', usage: { prompt_tokens: 21, completion_tokens: 6, cached_tokens: 16 } }));
    res = await post(server, '/v1/chat/completions', { ...chat, model: 'gpt' });
    assert.equal(res.status, 200, describeRes(res));
    expected.gpt.requests++;
    expected.gpt.prompt += res.json.usage.prompt_tokens;
    expected.gpt.cached += res.json.usage.prompt_tokens_details.cached_tokens;
    expected.gpt.completion += res.json.usage.completion_tokens;

    res = await post(server, '/v1/chat/completions', { ...chat, model: 'no-such-model' });
    assert.equal(res.status, 404, describeRes(res));
  });

  it('GET /metrics passes promtool check metrics', async () => {
    assert.ok(
      existsSync(PROMTOOL),
      `${PROMTOOL} not found: install the Debian package "prometheus" (scripts/deps.sh lists it)`,
    );
    const res = await get(server, '/metrics');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: res.text, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}\n${res.text}`);
    assert.equal(`${check.stdout}${check.stderr}`.trim(), '', 'promtool has lint remarks');
  });

  it('request and token counters equal the responses\' usage', async () => {
    const s = parseMetrics((await get(server, '/metrics')).text);
    const local = { model: 'local', backend: 'local' };
    const gpt = { model: 'gpt', backend: 'gpt' };

    assert.equal(sample(s, 'switchboard_requests_total', { ...local, status: '200' }), expected.local.requests);
    assert.equal(sample(s, 'switchboard_requests_total', { ...gpt, status: '200' }), expected.gpt.requests);
    // An unknown model is counted with empty labels: clients cannot grow the label set.
    assert.equal(sample(s, 'switchboard_requests_total', { model: '', backend: '', status: '404' }), 1);

    const tokens = (labels, direction) => sample(s, 'switchboard_tokens_total', { ...labels, direction });
    assert.equal(tokens(local, 'prompt') + tokens(local, 'cached'), expected.local.prompt);
    assert.equal(tokens(local, 'completion'), expected.local.completion);
    assert.equal(tokens(gpt, 'prompt'), expected.gpt.prompt - expected.gpt.cached);
    assert.equal(tokens(gpt, 'cached'), expected.gpt.cached);
    assert.equal(tokens(gpt, 'completion'), expected.gpt.completion);

    // (21 - 16) * 1 + 16 * 0.5 + 6 * 2 micro-dollars; local models are never priced.
    assert.equal(sample(s, 'switchboard_cost_microusd_total', gpt), 25);
    assert.equal(sample(s, 'switchboard_cost_microusd_total', local), 0);

    // One observation per request (and per model request for the overhead).
    assert.equal(sample(s, 'switchboard_request_duration_seconds_count', local), expected.local.requests);
    assert.equal(sample(s, 'switchboard_ttft_seconds_count', local), expected.local.requests);
    assert.equal(sample(s, 'switchboard_request_duration_seconds_count', gpt), expected.gpt.requests);
    assert.equal(
      sample(s, 'switchboard_gateway_overhead_seconds_count'),
      expected.local.requests + expected.gpt.requests + 1,
    );
    // Gaps between tokens are observed for the streamed request only.
    assert.ok(sample(s, 'switchboard_inter_token_seconds_count', local) > 0);
    assert.ok(sample(s, 'switchboard_generation_tokens_per_second_count', local) > 0);
  });
});
