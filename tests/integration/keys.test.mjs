// API keys, scopes, rate limits and budgets end to end: the real binary over HTTP, keys made and
// revoked with `switchboard keys` while it runs, the tiny local model and a fake OpenAI-compatible
// provider with a priced model. Checks 401 in each API's error shape, 403 for a model or
// sensitivity outside a key's scope, 429 with Retry-After for a rate limit, budgets that deny or
// downgrade to the local model, policy rules that see the key, its team and its budget, spend that
// survives a restart, and many parallel requests against a small budget that never spend more
// than it (summed from the ledger).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  TEST_TIMEOUT_MS,
  writeConfig,
  startServer,
  makeConfig,
  modelEntry,
  makeTempDir,
  removeTempDir,
  post,
  get,
  runBinary,
  pollUntil,
  describeRes,
  assertOpenAIError,
  cloudModel,
} from './harness.mjs';
import { startOpenAIFake, reply } from '../fakes/openai.mjs';

/* 40 bytes: the gateway estimates 10 prompt tokens, and the fake reports exactly 10 used. */
const CONTENT = 'Please say hello to the budget tests now';
assert.equal(Buffer.byteLength(CONTENT), 40);
const FAKE_USAGE = { prompt_tokens: 10, completion_tokens: 5 };
/* At $1000 / $2000 per million tokens, a token costs 1000 / 2000 micro-dollars: a request
 * reserves 10 * 1000 + max_tokens 5 * 2000 = 20000 before it is sent, and costs exactly that. */
const PRICING = [{ model: 'gpt-4o-mini', input_per_mtok: '1000', output_per_mtok: '2000' }];
const COST = 20000;

const chat = (model, extra = {}) => ({
  model,
  messages: [{ role: 'user', content: CONTENT }],
  max_tokens: 5,
  temperature: 0,
  ...extra,
});

const bearer = (key) => ({ authorization: `Bearer ${key}` });

function gptEntry(fake, name = 'gpt', extra = {}) {
  return cloudModel(fake, name, { breaker: { failures: 0 }, ...extra });
}

/* `switchboard keys create ... --config FILE`: the secret (stdout) and what it said (stderr). */
async function createKey(configPath, args) {
  const out = await runBinary(['keys', 'create', ...args, '--config', configPath]);
  assert.equal(out.code, 0, out.output);
  const key = out.stdout.trim();
  assert.match(key, /^sb-[0-9A-Za-z]{40}$/, out.output);
  assert.match(out.stderr, /cannot be shown again/);
  return key;
}

/* Polls until the running server accepts key (the refresher picks it up within about a second;
 * the poll bounds only a hang, not the speed). */
async function waitAccepted(server, key, body) {
  const res = await pollUntil(
    async () => {
      const r = await post(server, '/v1/chat/completions', body, { headers: bearer(key) });
      return r.status === 401 ? null : r;
    },
    { attempts: 400, intervalMs: 50 },
  );
  assert.ok(res, 'the server never accepted a key made while it ran');
  return res;
}

async function keysJson(configPath) {
  const out = await runBinary(['keys', 'list', '--format', 'json', '--config', configPath]);
  assert.equal(out.code, 0, out.output);
  return JSON.parse(out.stdout);
}

describe('keys required', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;
  let dir;
  let cfg;
  let cliConfig; /* the same config, in a file that outlives each server */
  const secrets = {};

  before(async () => {
    fake = await startOpenAIFake({ fallback: reply({ usage: FAKE_USAGE }) });
    dir = makeTempDir('sb-keys-');
    cfg = makeConfig({
      models: [modelEntry(), gptEntry(fake)],
      extra: {
        ledger: { path: path.join(dir, 'ledger.db'), commit_interval_ms: 10 },
        pricing: PRICING,
        auth: { keys: 'required' },
        budgets: { teams: [{ name: 'research', usd: '1', period: 'day' }] },
      },
    });
    cliConfig = writeConfig(dir, cfg, 'cli.yaml');
    server = await startServer(cfg);
  });

  after(async () => {
    if (server) await server.stop();
    if (fake) await fake.close();
    if (dir) removeTempDir(dir);
  });

  it('answers 401 without a key or with a wrong one, in each API\'s shape', async () => {
    const cases = [
      { name: 'none', headers: {} },
      { name: 'foreign', headers: bearer('sk-proj-not-ours') },
      { name: 'unknown', headers: { 'x-api-key': `sb-${'0'.repeat(40)}` } },
    ];
    for (const c of cases) {
      let res = await post(server, '/v1/chat/completions', chat('local'), { headers: c.headers });
      const err = assertOpenAIError(res, 401, { code: 'invalid_api_key' });
      assert.match(err.message, /API key/, c.name);

      res = await post(server, '/v1/messages', chat('local'), { headers: c.headers });
      assert.equal(res.status, 401, describeRes(res));
      assert.equal(res.json.type, 'error');
      assert.equal(res.json.error.type, 'authentication_error');
      assert.match(res.json.error.message, /API key/);

      res = await post(server, '/api/chat', { model: 'local', messages: chat('local').messages }, { headers: c.headers });
      assert.equal(res.status, 401, describeRes(res));
      assert.equal(typeof res.json.error, 'string');
      assert.match(res.json.error, /API key/);
    }
    // Bad input does not get past the missing key either.
    const res = await post(server, '/v1/chat/completions', '{not json');
    assertOpenAIError(res, 401, { code: 'invalid_api_key' });
    assert.equal(fake.requests.length, 0, 'nothing unauthenticated reached the provider');
  });

  it('keeps /health, /ready and /metrics open, and counts refusals by reason', async () => {
    for (const p of ['/health', '/ready', '/metrics']) {
      const res = await get(server, p);
      assert.equal(res.status, 200, `${p}: ${describeRes(res)}`);
    }
    const m = (await get(server, '/metrics')).text;
    assert.match(m, /switchboard_refused_total\{reason="missing_key"\} [1-9]/);
    assert.match(m, /switchboard_refused_total\{reason="invalid_key"\} [1-9]/);
  });

  it('accepts a key made by the CLI while it runs, from Bearer and x-api-key', async () => {
    const key = await createKey(cliConfig, ['--name', 'ci-bot', '--team', 'research']);
    secrets['ci-bot'] = key;
    let res = await waitAccepted(server, key, chat('local'));
    assert.equal(res.status, 200, describeRes(res));
    res = await post(server, '/v1/messages', chat('local'), { headers: { 'x-api-key': key } });
    assert.equal(res.status, 200, describeRes(res));
    res = await post(server, '/api/chat', { model: 'local', messages: chat('local').messages, stream: false }, { headers: bearer(key) });
    assert.equal(res.status, 200, describeRes(res));
    // Listed without its secret.
    const list = await keysJson(cliConfig);
    const k = list.find((e) => e.name === 'ci-bot');
    assert.ok(k, JSON.stringify(list));
    assert.equal(k.team, 'research');
    assert.ok(key.startsWith(k.prefix), `${k.prefix} is not the key's start`);
    assert.ok(!JSON.stringify(list).includes(key), 'keys list shows a secret');
  });

  it('answers 403 for a model or a sensitivity outside the key\'s scope', async () => {
    const key = await createKey(cliConfig, ['--name', 'scoped', '--models', 'local', '--max-sensitivity', 'low']);
    await waitAccepted(server, key, chat('local'));
    const before = fake.requests.length;
    let res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer(key) });
    const err = assertOpenAIError(res, 403, { type: 'permission_error', code: 'model_not_allowed' });
    assert.match(err.message, /scoped may not use model gpt/);
    res = await post(server, '/v1/messages', chat('gpt'), { headers: { 'x-api-key': key } });
    assert.equal(res.status, 403, describeRes(res));
    assert.equal(res.json.error.type, 'permission_error');
    res = await post(server, '/api/chat', { model: 'gpt', messages: chat('gpt').messages }, { headers: bearer(key) });
    assert.equal(res.status, 403, describeRes(res));
    assert.match(res.json.error, /may not use model gpt/);

    res = await post(server, '/v1/chat/completions', chat('local'), {
      headers: { ...bearer(key), 'x-switchboard-sensitivity': 'high' },
    });
    const e2 = assertOpenAIError(res, 403, { type: 'permission_error', code: 'sensitivity_not_allowed' });
    assert.match(e2.message, /low sensitivity at most; this request is high/);
    res = await post(server, '/v1/chat/completions', chat('local'), {
      headers: { ...bearer(key), 'x-switchboard-sensitivity': 'low' },
    });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(fake.requests.length, before, 'nothing out of scope reached the provider');
  });

  it('answers 429 with Retry-After over a rate limit, naming the limit', async () => {
    const key = await createKey(cliConfig, ['--name', 'slow', '--rpm', '2']);
    let res = await waitAccepted(server, key, chat('local'));
    assert.equal(res.status, 200, describeRes(res));
    res = await post(server, '/v1/chat/completions', chat('local'), { headers: bearer(key) });
    assert.equal(res.status, 200, describeRes(res));
    res = await post(server, '/v1/chat/completions', chat('local'), { headers: bearer(key) });
    const err = assertOpenAIError(res, 429, { type: 'requests', code: 'rate_limit_exceeded' });
    assert.match(err.message, /API key slow: 2 requests per minute/);
    const retry = Number(res.headers.get('retry-after'));
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 30, `Retry-After ${res.headers.get('retry-after')}`);
    res = await post(server, '/v1/messages', chat('local'), { headers: { 'x-api-key': key } });
    assert.equal(res.status, 429, describeRes(res));
    assert.equal(res.json.error.type, 'rate_limit_error');

    const tkey = await createKey(cliConfig, ['--name', 'tiny-tpm', '--tpm', '5']);
    res = await waitAccepted(server, tkey, chat('local'));
    const e2 = assertOpenAIError(res, 429, { type: 'tokens', code: 'rate_limit_exceeded' });
    assert.match(e2.message, /about 10 prompt tokens, more than its limit of 5 tokens per minute/);
  });

  it('denies a request over the key\'s budget with 429 insufficient_quota', async () => {
    const key = await createKey(cliConfig, ['--name', 'capped', '--team', 'research', '--budget-usd', '0.05', '--period', 'day']);
    secrets.capped = key;
    let res = await waitAccepted(server, key, chat('gpt'));
    assert.equal(res.status, 200, describeRes(res));
    res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer(key) });
    assert.equal(res.status, 200, describeRes(res));
    const served = fake.requests.length;
    res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer(key) });
    const err = assertOpenAIError(res, 429, { type: 'insufficient_quota', code: 'insufficient_quota' });
    assert.match(err.message, /API key capped has spent \$0\.04 of its daily budget of \$0\.05; this request may cost up to \$0\.02/);
    assert.match(err.message, /renews at \d{4}-\d\d-\d\dT00:00:00Z/);
    const retry = Number(res.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 86400, `Retry-After ${res.headers.get('retry-after')}`);
    assert.equal(fake.requests.length, served, 'the refused request was not sent');
    // The local model costs nothing: still served.
    res = await post(server, '/v1/chat/completions', chat('local'), { headers: bearer(key) });
    assert.equal(res.status, 200, describeRes(res));
  });

  it('never spends more than a budget under many parallel requests', async () => {
    const key = await createKey(cliConfig, ['--name', 'burst', '--team', 'research', '--budget-usd', '0.1', '--period', 'month']);
    secrets.burst = key;
    await waitAccepted(server, key, chat('local'));
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        post(server, i % 2 ? '/v1/chat/completions' : '/v1/messages', chat('gpt'), { headers: bearer(key) }),
      ),
    );
    const ok = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 429).length;
    assert.equal(ok + refused, results.length, results.map((r) => r.status).join(','));
    // Each reserves exactly what it costs: $0.10 / $0.02 = 5 fit, whatever the interleaving.
    assert.equal(ok, 5, results.map((r) => r.status).join(','));
  });

  it('records key and team in the ledger, and remembers spend across a restart', async () => {
    const output = server.output;
    const st = await server.stop();
    server = null;
    assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}`);
    assert.doesNotMatch(output(), /Sanitizer|runtime error/);
    const list = await keysJson(cliConfig);
    const burst = list.find((k) => k.name === 'burst');
    assert.equal(burst.spent_microusd, 5 * COST, 'the ledger holds the burst key\'s spend');
    assert.ok(burst.spent_microusd <= burst.budget_microusd);
    assert.equal(list.find((k) => k.name === 'capped').spent_microusd, 2 * COST);

    const report = await runBinary(['report', '--ledger', path.join(dir, 'ledger.db'), '--format', 'json', '--since', 'all']);
    assert.equal(report.code, 0, report.output);
    const groups = JSON.parse(report.stdout).keys;
    const byName = (name) => groups.find((g) => g.name === list.find((k) => k.name === name).id);
    assert.equal(byName('burst').recorded_cost_microusd, 5 * COST);
    assert.ok(byName('ci-bot').requests >= 3, JSON.stringify(groups));

    // A new server reads this period's spend back from the ledger: both keys are still over.
    server = await startServer(cfg);
    let res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer(secrets.capped) });
    assertOpenAIError(res, 429, { type: 'insufficient_quota', code: 'insufficient_quota' });
    res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer(secrets.burst) });
    assertOpenAIError(res, 429, { type: 'insufficient_quota', code: 'insufficient_quota' });
    res = await post(server, '/v1/chat/completions', chat('local'), { headers: bearer(secrets.capped) });
    assert.equal(res.status, 200, describeRes(res));
  });

  it('refuses a revoked key within a poll', async () => {
    const out = await runBinary(['keys', 'revoke', 'ci-bot', '--config', cliConfig]);
    assert.equal(out.code, 0, out.output);
    const res = await pollUntil(
      async () => {
        const r = await post(server, '/v1/chat/completions', chat('local'), { headers: bearer(secrets['ci-bot']) });
        return r.status === 401 ? r : null;
      },
      { attempts: 400, intervalMs: 50 },
    );
    assert.ok(res, 'the revoked key still works');
    assert.match(res.json.error.message, /revoked/);
    const again = await runBinary(['keys', 'revoke', 'ci-bot', '--config', cliConfig]);
    assert.equal(again.code, 2, again.output);
    assert.match(again.stderr, /no active key is named "ci-bot"/);
  });
});

describe('keys optional, a global budget that downgrades to local', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;

  before(async () => {
    fake = await startOpenAIFake({ fallback: reply({ usage: FAKE_USAGE }) });
    server = await startServer(
      makeConfig({
        models: [gptEntry(fake, 'gpt', { fallback: ['local'] }), modelEntry(), gptEntry(fake, 'gpt-only')],
        extra: {
          pricing: PRICING,
          auth: { keys: 'optional' },
          budgets: { global: { usd: '0.04', period: 'month' }, on_limit: 'local' },
          // Each model's own chain: the hybrid default would give gpt-only a local fallback too.
          policy: { default: 'none' },
        },
      }),
    );
  });

  after(async () => {
    if (server) await server.stop();
    if (fake) await fake.close();
  });

  it('serves callers without a Switchboard key, and refuses an unknown one', async () => {
    let res = await post(server, '/v1/chat/completions', chat('gpt'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'gpt');
    res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer('sk-what-sdks-send') });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'gpt');
    res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer(`sb-${'1'.repeat(40)}`) });
    assertOpenAIError(res, 401, { code: 'invalid_api_key' });
    assert.equal(fake.requests.length, 2);
  });

  it('serves from the local member once the budget is spent, and 429 without one', async () => {
    // $0.04 spent of $0.04: the next cloud request does not fit.
    let res = await post(server, '/v1/chat/completions', chat('gpt'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'local');
    res = await post(server, '/v1/messages', { ...chat('gpt'), stream: true });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'local');
    assert.equal(fake.requests.length, 2, 'nothing more reached the provider');

    res = await post(server, '/v1/chat/completions', chat('gpt-only'));
    const err = assertOpenAIError(res, 429, { type: 'insufficient_quota', code: 'insufficient_quota' });
    assert.match(err.message, /the gateway has spent \$0\.04 of its monthly budget of \$0\.04/);
    assert.match(err.message, /No local model/);
    res = await post(server, '/api/chat', { model: 'gpt-only', messages: chat('gpt').messages });
    assert.equal(res.status, 429, describeRes(res));
    assert.match(res.json.error, /Budget exceeded/);

    const m = (await get(server, '/metrics')).text;
    assert.match(m, /switchboard_budget_downgrades_total 2\b/);
    assert.match(m, /switchboard_refused_total\{reason="budget"\} 2\b/);
  });
  it('stops cleanly', async () => {
    const output = server.output;
    const st = await server.stop();
    server = null;
    assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}`);
    assert.doesNotMatch(output(), /Sanitizer|runtime error/);
  });
});

describe('policy rules see the key, its team and its budget', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;
  let dir;
  let cliConfig;

  before(async () => {
    fake = await startOpenAIFake({ fallback: reply({ usage: FAKE_USAGE }) });
    dir = makeTempDir('sb-keys-policy-');
    const cfg = makeConfig({
      models: [modelEntry(), gptEntry(fake)],
      extra: {
        ledger: { path: path.join(dir, 'ledger.db'), commit_interval_ms: 10 },
        pricing: PRICING,
        auth: { keys: 'required' },
        policy: {
          rules: [
            { id: 'research-stays-local', when: { team: ['research'] }, action: { route: ['local'] } },
            { id: 'nearly-spent', when: { budget_below_usd: '0.015' }, action: { route: ['local'] } },
            { id: 'cloud', when: { model: ['gpt'] }, action: { route: ['gpt'] } },
          ],
        },
      },
    });
    cliConfig = writeConfig(dir, cfg, 'cli.yaml');
    server = await startServer(cfg);
  });

  after(async () => {
    if (server) await server.stop();
    if (fake) await fake.close();
    if (dir) removeTempDir(dir);
  });

  it('routes by team and by the budget left', async () => {
    const research = await createKey(cliConfig, ['--name', 'r1', '--team', 'research']);
    let res = await waitAccepted(server, research, chat('gpt'));
    assert.equal(res.status, 200, describeRes(res));
    assert.match(res.headers.get('x-switchboard-route'), /backend=local; rule=research-stays-local/);

    const thrifty = await createKey(cliConfig, ['--name', 'thrifty', '--budget-usd', '0.03']);
    res = await waitAccepted(server, thrifty, chat('gpt'));
    assert.equal(res.status, 200, describeRes(res));
    assert.match(res.headers.get('x-switchboard-route'), /backend=gpt; rule=cloud/);
    // $0.01 left, below the rule's $0.015.
    res = await post(server, '/v1/chat/completions', chat('gpt'), { headers: bearer(thrifty) });
    assert.equal(res.status, 200, describeRes(res));
    assert.match(res.headers.get('x-switchboard-route'), /backend=local; rule=nearly-spent/);
    assert.equal(fake.requests.length, 1);
  });
  it('stops cleanly', async () => {
    const output = server.output;
    const st = await server.stop();
    server = null;
    assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}`);
    assert.doesNotMatch(output(), /Sanitizer|runtime error/);
  });
});
