// The request ledger end to end: mixed traffic (OpenAI and Anthropic and Ollama inbound, streamed
// and not, the local model and an OpenAI-compatible fake, errors), then SIGTERM — the server must
// flush every row before it exits — then `switchboard report --format json` on the database: its
// request count and token totals equal what the responses said, exactly, per backend too; the
// priced backend's recorded cost is exact; and no prompt or completion text is in the file.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  modelEntry,
  makeTempDir,
  removeTempDir,
  post,
  postStream,
  runBinary,
  describeRes,
  cloudModel,
  stopClean,
} from './harness.mjs';
import { startOpenAIFake, reply, errorReply } from '../fakes/openai.mjs';

/* Appears in every prompt: it must never reach the ledger. */
const SECRET = 'purple-elephant-7741';

let fake;
let server;
let dir;
let db;

before(async () => {
  fake = await startOpenAIFake();
  dir = makeTempDir('sb-ledger-');
  db = path.join(dir, 'ledger.db');
  server = await startServer(
    makeConfig({
      models: [
        modelEntry(),
        cloudModel(fake, 'gpt', { breaker: { failures: 0 } }),
      ],
      extra: {
        ledger: { path: db, commit_interval_ms: 20 },
        // Failing cloud requests must fail here; the hybrid default would serve them locally.
        policy: { default: 'none' },
        pricing: [{ model: 'gpt-4o-mini', input_per_mtok: '1', cached_input_per_mtok: '0.5', output_per_mtok: '2' }],
      },
    }),
  );
});

after(async () => {
  if (fake) await fake.close();
  if (server) await server.stop();
  if (dir) removeTempDir(dir);
});

/* What the clients were told, summed per backend. */
const sent = { requests: 0, errors: 0 };
const per = {
  local: { requests: 0, prompt: 0, cached: 0, completion: 0 },
  gpt: { requests: 0, prompt: 0, cached: 0, completion: 0, cost: 0 },
};

function count(backend, prompt, cached, completion) {
  sent.requests++;
  per[backend].requests++;
  per[backend].prompt += prompt;
  per[backend].cached += cached;
  per[backend].completion += completion;
}

function fromOpenAI(backend, usage) {
  count(backend, usage.prompt_tokens, usage.prompt_tokens_details?.cached_tokens ?? 0, usage.completion_tokens);
}

function fromAnthropic(backend, u) {
  count(backend, u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens, u.cache_read_input_tokens, u.output_tokens);
}

const CHAT = { messages: [{ role: 'user', content: `Tell me a story. ${SECRET}` }], temperature: 0, max_tokens: 10 };
const FAKE_USAGE = { prompt_tokens: 21, completion_tokens: 6, cached_tokens: 16 };
/* (21 - 16) * 1 + 16 * 0.5 + 6 * 2 micro-dollars at the config's prices. */
const FAKE_COST = 25;

describe('ledger', { timeout: TEST_TIMEOUT_MS }, () => {
  it('mixed traffic', async () => {
    let res = await post(server, '/v1/chat/completions', { model: 'local', ...CHAT });
    assert.equal(res.status, 200, describeRes(res));
    fromOpenAI('local', res.json.usage);

    res = await postStream(server, '/v1/chat/completions', {
      model: 'local',
      ...CHAT,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(res.status, 200, describeRes(res));
    fromOpenAI('local', res.stream.chunks.find((c) => c.usage).usage);

    res = await post(server, '/v1/messages', { model: 'local', ...CHAT });
    assert.equal(res.status, 200, describeRes(res));
    fromAnthropic('local', res.json.usage);

    res = await post(server, '/v1/messages', { model: 'local', ...CHAT, stream: true });
    assert.equal(res.status, 200, describeRes(res));
    const delta = res.text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)))
      .find((e) => e.type === 'message_delta');
    fromAnthropic('local', delta.usage);

    res = await post(server, '/api/chat', { model: 'local', messages: CHAT.messages, stream: false, options: { num_predict: 4 } });
    assert.equal(res.status, 200, describeRes(res));
    // Ollama's answer has no field for cached tokens: counted as none here (see below).
    count('local', res.json.prompt_eval_count, 0, res.json.eval_count);

    fake.push(reply({ text: 'Hello.', usage: FAKE_USAGE }));
    res = await post(server, '/v1/chat/completions', { model: 'gpt', ...CHAT });
    assert.equal(res.status, 200, describeRes(res));
    fromOpenAI('gpt', res.json.usage);
    per.gpt.cost += FAKE_COST;

    fake.push(reply({ text: 'Hello again.', usage: FAKE_USAGE }));
    res = await post(server, '/v1/messages', { model: 'gpt', ...CHAT, stream: true });
    assert.equal(res.status, 200, describeRes(res));
    const d2 = res.text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)))
      .find((e) => e.type === 'message_delta');
    fromAnthropic('gpt', d2.usage);
    per.gpt.cost += FAKE_COST;

    // Errors: an unknown model (no backend), and an upstream failure (502).
    res = await post(server, '/v1/chat/completions', { model: 'nope', ...CHAT });
    assert.equal(res.status, 404, describeRes(res));
    sent.requests++;
    sent.errors++;
    fake.push(errorReply(500, 'upstream exploded'));
    res = await post(server, '/v1/chat/completions', { model: 'gpt', ...CHAT });
    assert.equal(res.status, 502, describeRes(res));
    sent.requests++;
    sent.errors++;
  });

  it('SIGTERM flushes every row, and the report\'s totals equal the responses\' usage', async () => {
    await stopClean(server);
    assert.ok(existsSync(db), `no ledger at ${db}: does serve open the ledger and give it to the server?`);

    const out = await runBinary(['report', '--ledger', db, '--format', 'json', '--since', 'all']);
    assert.equal(out.code, 0, out.output);
    const report = JSON.parse(out.stdout);
    const t = report.totals;
    assert.ok(t.requests > 0, 'the ledger has no rows: does serve give it to the server (sb_server_set_ledger)?');
    const local = report.backends.find((b) => b.name === 'local');
    const gpt = report.backends.find((b) => b.name === 'gpt');
    assert.ok(local && gpt, JSON.stringify(report.backends));

    assert.equal(t.requests, sent.requests, 'one row per request, errors included');
    assert.equal(t.errors, sent.errors);
    assert.equal(local.requests, per.local.requests);
    assert.equal(gpt.requests, per.gpt.requests);
    // Requests no backend served (the unknown model, the upstream failure) have backend "".
    const none = report.backends.find((b) => b.name === '');
    assert.equal(none?.requests, 2, JSON.stringify(report.backends));
    assert.equal(none.errors, 2);
    // By the model asked for, the failed upstream request is gpt's.
    assert.equal(report.models.find((m) => m.name === 'gpt')?.requests, per.gpt.requests + 1);
    assert.equal(report.models.find((m) => m.name === 'gpt').errors, 1);

    assert.equal(local.prompt_tokens, per.local.prompt);
    assert.equal(local.completion_tokens, per.local.completion);
    // Cached tokens as the OpenAI and Anthropic responses reported them; Ollama's response has no
    // field for them, so the local total may hold more (prefix reuse), never fewer.
    assert.ok(local.cached_prompt_tokens >= per.local.cached, JSON.stringify(local));
    assert.ok(local.cached_prompt_tokens <= per.local.prompt, JSON.stringify(local));
    assert.equal(gpt.prompt_tokens, per.gpt.prompt);
    assert.equal(gpt.cached_prompt_tokens, per.gpt.cached);
    assert.equal(gpt.completion_tokens, per.gpt.completion);
    assert.equal(t.prompt_tokens, per.local.prompt + per.gpt.prompt);
    assert.equal(t.completion_tokens, per.local.completion + per.gpt.completion);

    // The priced backend's cost is exact; local models are never priced from a table.
    assert.equal(gpt.recorded_cost_microusd, per.gpt.cost);
    assert.equal(local.recorded_cost_microusd, null);

    // No prompt or completion text in the database.
    for (const f of [db, `${db}-wal`]) {
      if (existsSync(f)) assert.ok(!readFileSync(f).includes(SECRET), `${f} holds prompt text`);
    }
  });
});
