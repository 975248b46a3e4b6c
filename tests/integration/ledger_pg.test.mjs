// The ledger on PostgreSQL end to end, against a real server this file starts (tests/pg/start.sh):
// mixed traffic through the local model and fakes (OpenAI, Anthropic with prompt-cache writes, a
// fallback chain, a chain where every backend fails) with content logging on; then SIGTERM and
// the rows read back with psql: one per request, every backend a chain tried in order,
// cache-write tokens recorded and priced, the prompt and completion text exactly as sent; and
// `switchboard report --ledger URL` agreeing with what the clients were told. Then a server whose
// PostgreSQL is stopped and started under it: requests never wait, rows written while it was down
// are counted as failed, rows after it is back arrive. And a wrong password or an unreachable
// server: a clear error naming the host, never the password.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  modelEntry,
  makeTempDir,
  removeTempDir,
  writeConfig,
  serveArgs,
  post,
  postStream,
  request,
  runBinary,
  describeRes,
  closedPort,
} from './harness.mjs';
import { startOpenAIFake, reply, errorReply } from '../fakes/openai.mjs';
import { startAnthropicFake, reply as claudeReply } from '../fakes/anthropic.mjs';
import { startPostgres } from './pg.mjs';

/* In every prompt: with content logging on it must be in request_content, nowhere else. */
const SECRET = 'violet-heron-5530';
const CLAUDE_KEY = 'sk-ant-ledger-test';

let pg;
let openai;
let claude;
let deadPort;

before(async () => {
  pg = await startPostgres();
  openai = await startOpenAIFake();
  claude = await startAnthropicFake({ apiKey: CLAUDE_KEY });
  deadPort = await closedPort();
});

after(async () => {
  if (openai) await openai.close();
  if (claude) await claude.close();
  if (pg) await pg.stop();
});

const once = { retries: { max: 0 }, breaker: { failures: 0 } };

function models() {
  const remote = (name, extra = {}) => ({
    name,
    backend: 'openai',
    base_url: `${openai.url}/v1`,
    api_key: 'sk-upstream-test',
    ...once,
    ...extra,
  });
  const dead = (name, extra = {}) =>
    remote(name, { base_url: `http://127.0.0.1:${deadPort}/v1`, timeouts: { connect_ms: 2000 }, ...extra });
  return [
    modelEntry(),
    remote('gpt', { upstream_model: 'gpt-4o-mini' }),
    remote('flaky', { fallback: ['gpt'] }),
    dead('dead1', { fallback: ['dead2'] }),
    dead('dead2'),
    { name: 'claude', backend: 'anthropic', base_url: claude.url, api_key: CLAUDE_KEY, upstream_model: 'claude-test-1', ...once },
  ];
}

const PRICING = [
  { model: 'gpt-4o-mini', input_per_mtok: '1', cached_input_per_mtok: '0.5', output_per_mtok: '2' },
  { model: 'claude-test-1', input_per_mtok: '3', cached_input_per_mtok: '0.3', cache_write_per_mtok: '3.75', output_per_mtok: '15' },
];

function chat(model, extra = {}) {
  return { model, messages: [{ role: 'user', content: `Say hello. ${SECRET}` }], max_tokens: 8, temperature: 0, ...extra };
}

/* The value of a metric series in /metrics (0 when absent). */
async function metric(server, name) {
  const res = await request(server, 'GET', '/metrics');
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('ledger on PostgreSQL', { timeout: TEST_TIMEOUT_MS }, () => {
  it('records every request, backend tried and cache write, with its text; report agrees', async () => {
    const server = await startServer(
      makeConfig({
        models: models(),
        // Each model's own chain (failures must fail): the hybrid default would add local fallbacks.
        extra: { ledger: { path: pg.url, commit_interval_ms: 20, content_logging: true }, pricing: PRICING, policy: { default: 'none' } },
      }),
    );
    const sent = []; // { body, status, text, backend, tried, prompt, cached, write, completion, cost }
    try {
      let body = chat('local');
      let res = await post(server, '/v1/chat/completions', body);
      assert.equal(res.status, 200, describeRes(res));
      let u = res.json.usage;
      sent.push({ body, status: 200, text: res.json.choices[0].message.content, backend: 'local', tried: 'local',
        prompt: u.prompt_tokens, cached: u.prompt_tokens_details?.cached_tokens ?? 0, write: 0, completion: u.completion_tokens, cost: null });

      body = chat('local', { stream: true, stream_options: { include_usage: true } });
      res = await postStream(server, '/v1/chat/completions', body);
      assert.equal(res.status, 200, describeRes(res));
      u = res.stream.chunks.find((c) => c.usage).usage;
      sent.push({ body, status: 200, text: res.stream.chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join(''),
        backend: 'local', tried: 'local', prompt: u.prompt_tokens, cached: u.prompt_tokens_details?.cached_tokens ?? 0,
        write: 0, completion: u.completion_tokens, cost: null });

      // Anthropic with a prompt-cache write: 12 + 100 read + 4 written, 9 out, priced
      // 12 * 3 + 100 * 0.3 + 4 * 3.75 + 9 * 15 = 216 micro-dollars.
      claude.push(claudeReply({ apiKey: CLAUDE_KEY, text: 'Cached hello.',
        usage: { input_tokens: 12, output_tokens: 9, cache_read_input_tokens: 100, cache_creation_input_tokens: 4 } }));
      body = chat('claude');
      res = await post(server, '/v1/chat/completions', body);
      assert.equal(res.status, 200, describeRes(res));
      sent.push({ body, status: 200, text: 'Cached hello.', backend: 'claude', tried: 'claude', prompt: 116, cached: 100,
        write: 4, completion: 9, cost: 216 });

      // flaky fails with a 500 and falls back to gpt: both are tried, in that order.
      openai.push(errorReply(500, 'boom'), reply({ text: 'Fallback hello.', usage: { prompt_tokens: 21, completion_tokens: 6, cached_tokens: 16 } }));
      body = chat('flaky');
      res = await post(server, '/v1/chat/completions', body);
      assert.equal(res.status, 200, describeRes(res));
      assert.equal(res.headers.get('x-switchboard-backend'), 'gpt');
      sent.push({ body, status: 200, text: 'Fallback hello.', backend: 'gpt', tried: 'flaky,gpt', prompt: 21, cached: 16,
        write: 0, completion: 6, cost: 25 });

      // Every backend of the chain refuses the connection: one 502, both recorded as tried.
      body = chat('dead1');
      res = await post(server, '/v1/chat/completions', body);
      assert.equal(res.status, 502, describeRes(res));
      sent.push({ body, status: 502, text: '', backend: '', tried: 'dead1,dead2', prompt: 0, cached: 0, write: 0, completion: 0, cost: null });
    } finally {
      const st = await server.stop();
      assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}\n${server.output().slice(-3000)}`);
    }
    assert.doesNotMatch(server.output(), /Sanitizer|runtime error/);
    assert.ok(!server.output().includes(pg.password), 'the server printed the password');

    const rows = await pg.query(
      'SELECT r.request_id, r.status, r.backend, r.backends_tried, r.prompt_tokens, r.cached_prompt_tokens, ' +
        'r.cache_write_tokens, r.completion_tokens, r.cost_microusd, c.prompt_json, c.completion_text ' +
        'FROM requests r LEFT JOIN request_content c ON c.request_id = r.request_id ORDER BY r.id',
    );
    assert.equal(rows.length, sent.length, JSON.stringify(rows));
    rows.forEach((row, i) => {
      const s = sent[i];
      const [id, status, backend, tried, prompt, cached, write, completion, cost, promptJson, text] = row;
      assert.match(id, /^req_/);
      assert.deepEqual(
        { status: Number(status), backend, tried, prompt: Number(prompt), cached: Number(cached), write: Number(write),
          completion: Number(completion), cost: cost === null ? null : Number(cost) },
        { status: s.status, backend: s.backend, tried: s.tried, prompt: s.prompt, cached: s.cached, write: s.write,
          completion: s.completion, cost: s.cost },
        `row ${i}`,
      );
      // The body byte for byte as the client sent it, and the text it was sent.
      assert.equal(promptJson, JSON.stringify(s.body), `row ${i}`);
      assert.equal(text, s.text, `row ${i}`);
    });
    const leaked = await pg.query(`SELECT count(*) FROM requests r WHERE r::text LIKE '%${SECRET}%'`);
    assert.equal(leaked[0][0], '0', 'prompt text in the requests table');

    const out = await runBinary(['report', '--ledger', pg.url, '--format', 'json', '--since', 'all']);
    assert.equal(out.code, 0, out.output);
    assert.ok(!out.output.includes(pg.password));
    const t = JSON.parse(out.stdout).totals;
    const sum = (k) => sent.reduce((a, s) => a + s[k], 0);
    assert.equal(t.requests, sent.length);
    assert.equal(t.errors, 1);
    assert.equal(t.fell_back, 2, 'the fallback and the chain that failed');
    assert.equal(t.prompt_tokens, sum('prompt'));
    assert.equal(t.cached_prompt_tokens, sum('cached'));
    assert.equal(t.cache_write_tokens, sum('write'));
    assert.equal(t.completion_tokens, sum('completion'));
    assert.equal(t.recorded_cost_microusd, 216 + 25);
  });

  it('PostgreSQL stopped and started under a running server: requests never wait, lost rows are counted', async () => {
    const server = await startServer(
      makeConfig({ models: [modelEntry()], extra: { ledger: { path: pg.url, commit_interval_ms: 20 } } }),
    );
    const count = async (table) => Number((await pg.query(`SELECT count(*) FROM ${table}`))[0][0]);
    const before = await count('requests');
    const textsBefore = await count('request_content');
    let sent = 0;
    const ask = async () => {
      const res = await post(server, '/v1/chat/completions', chat('local', { max_tokens: 2 }));
      assert.equal(res.status, 200, describeRes(res));
      sent++;
    };
    /* Every row recorded is committed or counted as failed: the writer has settled. */
    const settled = async () => {
      for (;;) {
        const done = (await metric(server, 'switchboard_ledger_rows_total')) + (await metric(server, 'switchboard_ledger_write_failed_total'));
        if (done === sent) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await ask();
      await ask();
      await settled();
      assert.equal(await metric(server, 'switchboard_ledger_rows_total'), 2);

      await pg.pause();
      for (let i = 0; i < 3; i++) await ask(); // answered while the ledger's server is down
      await settled();
      assert.equal(await metric(server, 'switchboard_ledger_write_failed_total'), 3);

      await pg.resume();
      // Rows sent before the writer's next reconnect may still fail (and are counted); then
      // they arrive.
      const committed = await metric(server, 'switchboard_ledger_rows_total');
      do {
        await ask();
        await settled();
      } while ((await metric(server, 'switchboard_ledger_rows_total')) === committed);
      for (let i = 0; i < 3; i++) await ask();
      await settled();
      const rows = await metric(server, 'switchboard_ledger_rows_total');
      const failed = await metric(server, 'switchboard_ledger_write_failed_total');
      assert.equal(rows + failed, sent);
      assert.ok(failed >= 3, `${failed} failed`);
      const st = await server.stop();
      assert.equal(st?.code, 0, server.output().slice(-3000));
      assert.equal((await count('requests')) - before, rows);
      // Content logging is off here: no text was recorded.
      assert.equal(await count('request_content'), textsBefore);
      assert.match(server.output(), /ledger write failed/);
      assert.match(server.output(), /127\.0\.0\.1/);
      assert.ok(!server.output().includes(pg.password), 'the server printed the password');
    } finally {
      await server.stop();
    }
  });

  it('a wrong password or an unreachable server is a clear error naming the host, never the password', async () => {
    const dir = makeTempDir('sb-ledger-pg-');
    try {
      const cases = [
        { url: `postgres://switchboard:wrong-pw-9931@127.0.0.1:${pg.port}/switchboard`, secret: 'wrong-pw-9931', says: /password authentication failed/ },
        { url: `postgresql://switchboard:${pg.password}@127.0.0.1:${deadPort}/switchboard`, secret: pg.password, says: /Connection refused/ },
      ];
      for (const c of cases) {
        const config = writeConfig(dir, makeConfig({ models: [modelEntry()], extra: { ledger: { path: c.url } } }));
        const serve = await runBinary(serveArgs(config));
        assert.notEqual(serve.code, 0, serve.output);
        assert.match(serve.stderr, /cannot connect to PostgreSQL/);
        assert.match(serve.stderr, c.says);
        assert.match(serve.stderr, /127\.0\.0\.1/);
        assert.ok(!serve.output.includes(c.secret), `the password is in:\n${serve.output}`);

        const rep = await runBinary(['report', '--ledger', c.url]);
        assert.equal(rep.code, 1, rep.output);
        assert.match(rep.stderr, /switchboard report: ledger postgres(ql)?:\/\/switchboard:\*\*\*@127\.0\.0\.1:\d+\/switchboard: cannot connect/);
        assert.ok(!rep.output.includes(c.secret), `the password is in:\n${rep.output}`);
      }
    } finally {
      removeTempDir(dir);
    }
  });
});
