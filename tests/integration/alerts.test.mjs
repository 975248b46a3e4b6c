// Alerts end to end: a priced cloud model behind the OpenAI fake, a loopback webhook receiver and
// a tiny min_usd. Unpriced requests never count; the priced request that takes the window's spend
// to min_usd raises one spend_spike, which the receiver gets as JSON (after a 500 it is retried),
// the server logs as a warn line and /metrics counts as sent. A bad alerts section is refused by
// `config check` with its line and column.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  makeTempDir,
  removeTempDir,
  writeConfig,
  post,
  get,
  runBinary,
  describeRes,
  cloudModel,
  stopClean,
} from './harness.mjs';
import { startFakeServer } from '../fakes/server.mjs';
import { startOpenAIFake, reply } from '../fakes/openai.mjs';

/* 10 prompt and 5 completion tokens at $1 and $2 per million: 20 micro-dollars a request. */
const USAGE = { prompt_tokens: 10, completion_tokens: 5, cached_tokens: 0 };
const COST = 20;
/* min_usd: the third priced request (60) reaches it, the second (40) does not. */
const MIN_MICROUSD = 50;

/* Hang guard for things that happen right after a response (the metering runs once the response
 * has been handed to the connection): polls, it is not a timing assertion. */
async function eventually(what, fn, ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) assert.fail(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const CHAT = { messages: [{ role: 'user', content: 'Hello?' }], max_tokens: 5 };

let provider;
let receiver;
let server;

before(async () => {
  provider = await startOpenAIFake();
  receiver = await startFakeServer({ fallback: { status: 200, body: 'ok' } });
  const cloud = (name, upstream) => ({
    name,
    backend: 'openai',
    base_url: `${provider.url}/v1`,
    api_key: 'sk-upstream-test',
    upstream_model: upstream,
    retries: { max: 0 },
    breaker: { failures: 0 },
  });
  server = await startServer(
    makeConfig({
      models: [cloud('gpt', 'gpt-4o-mini'), cloud('free', 'fake-unpriced-model-x')],
      extra: {
        ledger: { path: '' },
        pricing: [{ model: 'gpt-4o-mini', input_per_mtok: '1', output_per_mtok: '2' }],
        alerts: {
          webhook_url: `${receiver.url}/hook`,
          webhook_retries: 2,
          instance: 'itest',
          spend_spike: { window_s: 60, baseline_s: 3600, factor: '2', min_usd: '0.00005' },
        },
      },
    }),
  );
});

after(async () => {
  if (server) {
    // The alert sender is stopped and joined at shutdown: a clean exit, nothing leaked.
    await stopClean(server);
  }
  if (provider) await provider.close();
  if (receiver) await receiver.close();
});

describe('alerts', { timeout: TEST_TIMEOUT_MS }, () => {
  it('a spend spike is posted to the webhook, retried after a 500, and logged', async () => {
    // Unpriced: no cost, whatever the volume.
    for (let i = 0; i < 4; i++) {
      provider.push(reply({ usage: USAGE }));
      const res = await post(server, '/v1/chat/completions', { model: 'free', ...CHAT });
      assert.equal(res.status, 200, describeRes(res));
    }
    // The receiver answers the first POST with a 500; the sender retries.
    receiver.push({ status: 500, body: 'try again' }, { status: 200, body: 'ok' });
    for (let i = 0; i < 3; i++) {
      provider.push(reply({ usage: USAGE }));
      const res = await post(server, '/v1/chat/completions', { model: 'gpt', ...CHAT });
      assert.equal(res.status, 200, describeRes(res));
    }

    await eventually('the webhook POST and its retry', () => receiver.requests.length >= 2);
    const posts = receiver.requests;
    assert.equal(posts.length, 2, 'one alert, posted twice');
    for (const rec of posts) {
      assert.equal(rec.method, 'POST');
      assert.equal(rec.path, '/hook');
      assert.equal(rec.headers['content-type'], 'application/json');
    }
    assert.equal(posts[1].text, posts[0].text, 'the retry sends the same alert');
    const alert = posts[1].json;
    assert.ok(alert, posts[1].text);
    assert.match(alert.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const text =
      'spend spike: $0.00006 in the last 1 min, with no spend before it to compare with; ' +
      'alerts at $0.00005';
    // The whole object, in this order: a stable shape for the webhook's readers.
    assert.equal(
      posts[1].text,
      JSON.stringify({
        type: 'spend_spike',
        ts: alert.ts,
        instance: 'itest',
        window_s: 60,
        window_microusd: 3 * COST,
        baseline_s: 0,
        baseline_microusd: 0,
        expected_microusd: 0,
        ratio: null,
        factor: 2,
        min_microusd: MIN_MICROUSD,
        text: `[itest] ${text}`,
      }),
    );

    await eventually('the log line', () => server.output().includes(` warn  alert spend_spike: ${text}\n`));
    await eventually('the metric', async () => {
      const m = await get(server, '/metrics');
      return m.text.includes('switchboard_alerts_total{type="spend_spike",outcome="sent"} 1\n');
    });
    assert.ok(!server.output().includes(receiver.url + '/hook'), 'the webhook URL is never logged');
  });

  it('config check refuses a bad alerts section with its place', async () => {
    const dir = makeTempDir('sb-alerts-');
    try {
      const file = writeConfig(
        dir,
        'alerts:\n  webhook_url: hooks.example.com/x\n  spend_spike: {window_s: 600, baseline_s: 60, factor: "1"}\n',
      );
      const r = await runBinary(['config', 'check', file]);
      assert.equal(r.code, 2, r.output);
      assert.match(r.stderr, /switchboard\.yaml:2:16: alerts\.webhook_url: expected an http:\/\/ or https:\/\/ URL/);
      assert.match(r.stderr, /alerts\.spend_spike\.factor: expected a factor above 1, got "1"/);
      assert.match(r.stderr, /alerts\.spend_spike\.window_s: window_s \(600\) is not less than baseline_s \(60\)/);
    } finally {
      removeTempDir(dir);
    }
  });
});

describe('budget threshold alerts', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let hook;
  let srv;

  before(async () => {
    fake = await startOpenAIFake();
    hook = await startFakeServer({ fallback: { status: 200, body: 'ok' } });
    srv = await startServer(
      makeConfig({
        models: [
          cloudModel(fake, 'gpt', { breaker: { failures: 0 } }),
        ],
        extra: {
          ledger: { path: '' },
          pricing: [{ model: 'gpt-4o-mini', input_per_mtok: '1', output_per_mtok: '2' }],
          // Five requests of 20 micro-dollars spend the whole $0.0001.
          budgets: { global: { usd: '0.0001', period: 'month' } },
          alerts: { webhook_url: `${hook.url}/budget`, instance: 'itest' },
        },
      }),
    );
  });
  after(async () => {
    if (srv) {
      const st = await srv.stop();
      assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}\n${srv.output().slice(-3000)}`);
    }
    if (fake) await fake.close();
    if (hook) await hook.close();
  });

  it('posts 50%, 80% and 100% once each as the global budget is spent', async () => {
    const seen = [];
    for (let i = 1; i <= 5; i++) {
      fake.push(reply({ usage: USAGE }));
      const res = await post(srv, '/v1/chat/completions', { model: 'gpt', ...CHAT });
      assert.equal(res.status, 200, describeRes(res));
      // Spend is settled when the request is metered, just after its response.
      const want = i >= 5 ? 3 : i >= 4 ? 2 : i >= 3 ? 1 : 0;
      await eventually(`${want} budget alerts after request ${i}`, () => hook.requests.length >= want);
      seen.push(hook.requests.length);
    }
    assert.deepEqual(seen, [0, 0, 1, 2, 3], 'each threshold once, when it is crossed');
    const alerts = hook.requests.map((r) => r.json);
    assert.deepEqual(
      alerts.map((a) => [a.type, a.scope, a.percent, a.spent_microusd, a.limit_microusd]),
      [
        ['budget_threshold', 'global', 50, 3 * COST, 100],
        ['budget_threshold', 'global', 80, 4 * COST, 100],
        ['budget_threshold', 'global', 100, 5 * COST, 100],
      ],
    );
    for (const a of alerts) assert.match(a.text, /^\[itest\] global budget reached \d+%/);
    // The budget is spent: the next priced request is refused, and no fourth alert is raised.
    const res = await post(srv, '/v1/chat/completions', { model: 'gpt', ...CHAT });
    assert.equal(res.status, 429, describeRes(res));
    assert.equal(hook.requests.length, 3);
    await eventually('the log line', () => /warn {2}alert budget_threshold: global budget reached 100%/.test(srv.output()));
  });
});
