// The dashboard (GET /ui) in headless Chromium, driven by playwright-core: the page loads with no
// console or page error, follows live traffic through the local model and an OpenAI-compatible
// fake (one request failing, one for a model that does not exist), and shows the numbers /metrics
// reports — requests, errors, tokens and cost per backend, breaker states, TTFT and latency
// percentiles interpolated from the same buckets — plus a row per request in the recent decisions,
// with no prompt text or PII value anywhere. Also: the files' headers (types, ETag, CSP), the JSON
// summary's shape, 404 for unknown /ui paths, the error banner when the summary fails and recovers,
// and the dashboard turned off by config.
//
// Chromium: $SWITCHBOARD_CHROMIUM or /usr/bin/chromium (the Debian package "chromium").

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  modelEntry,
  request,
  post,
  postStream,
  get,
  describeRes,
  assertOpenAIError,
  cloudModel,
  stopClean,
  parseMetrics,
} from './harness.mjs';
import { startOpenAIFake, reply, errorReply } from '../fakes/openai.mjs';

const CHROMIUM = process.env.SWITCHBOARD_CHROMIUM || '/usr/bin/chromium';
/* How long a page may take to show what is awaited: a hang guard for a slow debug build on a busy
 * machine, never a performance threshold. */
const WAIT_MS = Number(process.env.SWITCHBOARD_TEST_UI_WAIT_MS || 60_000);
const REFRESH_MS = 200;

/* Text that must never reach the dashboard: a prompt and a PII value inside it. */
const EMAIL = 'dana.scully@example.org';
const SECRET_PROMPT = `Write to ${EMAIL} about the marker ui-prompt-7731.`;

function dashboardConfig(fake) {
  return makeConfig({
    models: [
      modelEntry(),
      // One failure opens its breaker, so the table has an open breaker to show.
      cloudModel(fake, 'gpt', { breaker: { failures: 1, open_ms: 3_600_000 } }),
    ],
    extra: {
      // Round prices, so the expected cost is exact (micro-dollars per token).
      pricing: [{ model: 'gpt-4o-mini', input_per_mtok: '1', cached_input_per_mtok: '0.5', output_per_mtok: '2' }],
      // A rule, so decisions carry a rule id and a reason; the rest goes to its configured chain.
      policy: {
        rules: [{ id: 'gpt-to-cloud', when: { model: ['gpt'] }, action: { route: ['gpt'] } }],
        default: 'none',
      },
    },
  });
}

/* ---------------------------------------------------------------------------------------------
 * /metrics, read the way a Prometheus client would
 * ------------------------------------------------------------------------------------------- */
/* The sum of every sample named name whose labels include want. */
function sum(samples, name, want = {}, pick = () => true) {
  return samples
    .filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v) && pick(s))
    .reduce((a, s) => a + s.value, 0);
}

/* Prometheus's histogram_quantile over every series of a histogram (buckets summed by le),
 * written independently of the server's. null when there is no observation. */
function quantile(samples, name, q, want = {}) {
  const byLe = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !Object.entries(want).every(([k, v]) => s.labels[k] === v)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]);
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total === 0) return null;
  const rank = q * total;
  for (let i = 0; i < buckets.length; i++) {
    const [upper, count] = buckets[i];
    if (count < rank) continue;
    if (upper === Infinity) return buckets[i - 1][0];
    const lower = i > 0 ? buckets[i - 1][0] : 0;
    const below = i > 0 ? buckets[i - 1][1] : 0;
    return lower + ((upper - lower) * (rank - below)) / (count - below);
  }
  return null;
}

function assertClose(actual, expected, what) {
  if (expected === null) {
    assert.ok(actual === null || actual === '', `${what}: expected none, got ${actual}`);
    return;
  }
  const a = Number(actual);
  assert.ok(Math.abs(a - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: page ${actual}, /metrics ${expected}`);
}

const BREAKER_NAMES = ['closed', 'half-open', 'open'];

/* ---------------------------------------------------------------------------------------------
 * The browser
 * ------------------------------------------------------------------------------------------- */
let browser;

async function launch() {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: install the Debian package "chromium" (scripts/deps.sh lists it) or set SWITCHBOARD_CHROMIUM`);
  // Root needs --no-sandbox; the machines that run the tests have no display.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
}

/* A page that records console errors and uncaught exceptions. */
async function openPage(server, { query = `?refresh=${REFRESH_MS}` } = {}) {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const res = await page.goto(`${server.url}/ui${query}`);
  assert.equal(res.status(), 200);
  return { page, problems };
}

/* The page's body attribute data-polls once it has reached at least n successful refreshes. */
async function waitForPolls(page, n) {
  await page.waitForFunction((want) => Number(document.body.dataset.polls) >= want, n, { timeout: WAIT_MS });
}

function tileValue(page, name) {
  return page.getAttribute(`[data-tile="${name}"] dd`, 'data-value');
}

function cellValue(page, table, key, value, fieldName) {
  return page.getAttribute(`[data-table="${table}"] tr[data-${key}="${value}"] [data-field="${fieldName}"]`, 'data-value');
}

/* ---------------------------------------------------------------------------------------------
 * The dashboard with traffic
 * ------------------------------------------------------------------------------------------- */
describe('dashboard', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;
  const sent = []; // { id, backend, status, model }

  before(async () => {
    fake = await startOpenAIFake();
    server = await startServer(dashboardConfig(fake));
    await launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (fake) await fake.close();
    if (server) {
      await stopClean(server);
    }
  });

  it('serves its files with their types, an ETag and a strict content policy', async () => {
    const files = {
      '/ui': /^text\/html; charset=utf-8$/,
      '/ui/': /^text\/html; charset=utf-8$/,
      '/ui/app.js': /^text\/javascript; charset=utf-8$/,
      '/ui/app.css': /^text\/css; charset=utf-8$/,
      '/ui/favicon.svg': /^image\/svg\+xml$/,
    };
    for (const [path, type] of Object.entries(files)) {
      const res = await get(server, path);
      assert.equal(res.status, 200, `${path}: ${describeRes(res)}`);
      assert.match(res.headers.get('content-type'), type, path);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(res.headers.get('cache-control'), 'no-cache', path);
      const csp = res.headers.get('content-security-policy');
      assert.match(csp, /default-src 'none'/, path);
      assert.match(csp, /script-src 'self'/, path);
      assert.doesNotMatch(csp, /unsafe|https?:/, path);
      const etag = res.headers.get('etag');
      assert.match(etag, /^"[0-9a-f]{16}"$/, path);
      assert.ok(res.text.length > 0, path);
      // Revalidation: the same ETag gives 304 and no body.
      const again = await get(server, path, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304, `${path} revalidated: ${describeRes(again)}`);
      assert.equal(again.text, '');
    }
    const page = await get(server, '/ui');
    // Nothing inline and nothing from elsewhere: the policy above would block it.
    assert.doesNotMatch(page.text, /<script>|<style|\sstyle="|\son[a-z]+="|https?:\/\//i);
    assert.match(page.text, /<script src="\/ui\/app.js" defer><\/script>/);
    const head = await request(server, 'HEAD', '/ui');
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    assert.equal(Number(head.headers.get('content-length')), Buffer.byteLength(page.text));
  });

  it('answers 404 for unknown /ui paths and 405 for a summary that is not a GET', async () => {
    for (const path of ['/ui/nope', '/ui/api/nope', '/ui/app.js/x', '/uix']) {
      assertOpenAIError(await get(server, path), 404, { code: 'unknown_url' });
    }
    const res = await post(server, '/ui/api/summary', {});
    assertOpenAIError(res, 405, { code: 'method_not_allowed' });
    assert.equal(res.headers.get('allow'), 'GET');
  });

  it('shows the traffic as /metrics counts it, with a row per request and no console error', async () => {
    const { page, problems } = await openPage(server);
    await waitForPolls(page, 1);
    assert.equal(await tileValue(page, 'requests'), '0');
    assert.equal(await page.getAttribute('body', 'data-state'), 'ok');

    // Traffic: the local model whole and streamed (the prompt carries a PII value), the cloud
    // model once priced and once failing (which opens its breaker), and a model that does not exist.
    const chat = { model: 'local', messages: [{ role: 'user', content: SECRET_PROMPT }], temperature: 0, max_tokens: 8 };
    let res = await post(server, '/v1/chat/completions', chat);
    assert.equal(res.status, 200, describeRes(res));
    sent.push({ id: res.headers.get('x-request-id'), model: 'local', backend: 'local', status: 200, rule: 'default' });
    res = await postStream(server, '/v1/chat/completions', { ...chat, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200, describeRes(res));
    sent.push({ id: res.headers.get('x-request-id'), model: 'local', backend: 'local', status: 200, rule: 'default' });
    fake.push(reply({ text: 'Hi.', usage: { prompt_tokens: 21, completion_tokens: 6, cached_tokens: 16 } }));
    res = await post(server, '/v1/chat/completions', { ...chat, model: 'gpt' });
    assert.equal(res.status, 200, describeRes(res));
    sent.push({ id: res.headers.get('x-request-id'), model: 'gpt', backend: 'gpt', status: 200, rule: 'gpt-to-cloud' });
    fake.push(errorReply(500, 'the fake provider broke'));
    res = await post(server, '/v1/chat/completions', { ...chat, model: 'gpt' });
    assert.ok(res.status >= 500, describeRes(res));
    sent.push({ id: res.headers.get('x-request-id'), model: 'gpt', status: res.status, rule: 'gpt-to-cloud' });
    res = await post(server, '/v1/chat/completions', { ...chat, model: 'no-such-model' });
    assert.equal(res.status, 404, describeRes(res));
    sent.push({ id: res.headers.get('x-request-id'), model: 'no-such-model', backend: null, status: 404, rule: null });

    const m = parseMetrics((await get(server, '/metrics')).text);
    const total = sum(m, 'switchboard_requests_total');
    assert.equal(total, sent.length);

    // The page catches up on its own, then shows what /metrics shows.
    await page.waitForFunction(
      (want) => document.querySelector('[data-tile="requests"] dd').dataset.value === String(want),
      total,
      { timeout: WAIT_MS },
    );
    const isError = (s) => Number(s.labels.status) >= 400;
    assert.equal(Number(await tileValue(page, 'errors')), sum(m, 'switchboard_requests_total', {}, isError));
    assert.equal(Number(await tileValue(page, 'cost-total')), sum(m, 'switchboard_cost_microusd_total'));
    assert.equal(Number(await tileValue(page, 'cost-total')), 25); // 5 + 16 * 0.5 + 6 * 2
    const costToday = Number(await tileValue(page, 'cost-today'));
    assert.ok(costToday === 25 || costToday === 0, `cost today ${costToday} (0 only if midnight UTC passed)`);
    for (const [tile, metric, q] of [
      ['ttft-p50', 'switchboard_ttft_seconds', 0.5],
      ['ttft-p95', 'switchboard_ttft_seconds', 0.95],
      ['latency-p50', 'switchboard_request_duration_seconds', 0.5],
      ['latency-p95', 'switchboard_request_duration_seconds', 0.95],
    ]) {
      assertClose(await tileValue(page, tile), quantile(m, metric, q), tile);
    }

    for (const backend of ['local', 'gpt', '']) {
      const want = { backend };
      const cell = (f) => cellValue(page, 'backends', 'backend', backend, f);
      assert.equal(Number(await cell('requests')), sum(m, 'switchboard_requests_total', want), `${backend} requests`);
      assert.equal(Number(await cell('errors')), sum(m, 'switchboard_requests_total', want, isError), `${backend} errors`);
      for (const dir of ['prompt', 'cached', 'completion']) {
        assert.equal(
          Number(await cell(`${dir}-tokens`)),
          sum(m, 'switchboard_tokens_total', { backend, direction: dir }),
          `${backend} ${dir} tokens`,
        );
      }
      assert.equal(Number(await cell('cost')), sum(m, 'switchboard_cost_microusd_total', want), `${backend} cost`);
      assertClose(await cell('ttft-p50'), quantile(m, 'switchboard_ttft_seconds', 0.5, want), `${backend} ttft p50`);
      assertClose(await cell('latency-p95'), quantile(m, 'switchboard_request_duration_seconds', 0.95, want), `${backend} latency p95`);
    }
    assert.ok(sum(m, 'switchboard_tokens_total', { backend: 'local', direction: 'completion' }) > 0);
    for (const backend of ['local', 'gpt']) {
      const state = m.find((s) => s.name === 'switchboard_breaker_state' && s.labels.backend === backend);
      assert.ok(state, `no breaker gauge for ${backend}`);
      assert.equal(await cellValue(page, 'backends', 'backend', backend, 'breaker'), BREAKER_NAMES[state.value]);
    }
    assert.equal(await cellValue(page, 'backends', 'backend', 'gpt', 'breaker'), 'open');
    for (const model of ['local', 'gpt']) {
      assert.equal(
        Number(await cellValue(page, 'models', 'model', model, 'requests')),
        sum(m, 'switchboard_requests_total', { model }),
        `model ${model}`,
      );
    }

    // One row per request, newest first, with where it went and why.
    const ids = await page.$$eval('[data-table="recent"] tbody tr', (rows) => rows.map((r) => r.dataset.requestId));
    assert.deepEqual(ids, sent.map((s) => s.id).reverse());
    for (const s of sent) {
      const row = (f) => cellValue(page, 'recent', 'request-id', s.id, f);
      assert.equal(Number(await row('status')), s.status, `${s.id} status`);
      if (s.backend !== undefined) assert.equal(await row('backend'), s.backend ?? '', `${s.id} backend`);
      assert.equal(await row('rule'), s.rule ?? '', `${s.id} rule`);
      const model = await page.textContent(`[data-table="recent"] tr[data-request-id="${s.id}"] [data-field="model"]`);
      assert.equal(model, s.model);
      if (s.rule) {
        const reason = await page.textContent(`[data-table="recent"] tr[data-request-id="${s.id}"] [data-field="reason"]`);
        assert.match(reason, new RegExp(s.rule === 'default' ? '^default none' : `^rule ${s.rule}`));
      }
    }

    // Rates need two refreshes after the traffic; the sparkline draws them.
    const polls = Number(await page.getAttribute('body', 'data-polls'));
    await waitForPolls(page, polls + 2);
    for (const tile of ['rps', 'tps']) {
      const v = await tileValue(page, tile);
      assert.ok(v !== '' && Number.isFinite(Number(v)) && Number(v) >= 0, `${tile} = ${JSON.stringify(v)}`);
    }
    assert.equal(await page.locator('[data-spark="rps"] polyline').count(), 1);

    const html = await page.content();
    assert.ok(!html.includes(EMAIL), 'the page shows a PII value');
    assert.ok(!html.includes('ui-prompt-7731'), 'the page shows prompt text');
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('GET /ui/api/summary: the shape the page reads, from the same counters', async () => {
    const res = await get(server, '/ui/api/summary');
    assert.equal(res.status, 200, describeRes(res));
    assert.match(res.headers.get('content-type'), /^application\/json/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const s = res.json;
    assert.equal(typeof s.version, 'string');
    assert.equal(s.quantiles, 'bucket-interpolated');
    assert.ok(Number.isInteger(s.now_ms) && Number.isInteger(s.started_ms) && s.now_ms >= s.started_ms);
    assert.match(s.day, /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(s.listen, `127.0.0.1:${server.port}`);
    const m = parseMetrics((await get(server, '/metrics')).text);
    assert.equal(s.totals.requests, sum(m, 'switchboard_requests_total'));
    assert.equal(s.totals.cost_microusd, sum(m, 'switchboard_cost_microusd_total'));
    assert.equal(s.totals.cost_usd, s.totals.cost_microusd / 1e6);
    const classes = Object.values(s.totals.status_classes).reduce((a, b) => a + b, 0);
    assert.equal(classes, s.totals.requests);
    for (const key of ['ttft_seconds', 'latency_seconds', 'generation_tokens_per_second']) {
      for (const f of ['count', 'sum', 'p50', 'p95', 'p99']) assert.ok(f in s.totals[key], `totals.${key}.${f}`);
    }
    assert.equal(s.totals.latency_seconds.count, sum(m, 'switchboard_request_duration_seconds_count'));
    assert.deepEqual(s.backends.map((b) => b.name), ['local', 'gpt', '']);
    assert.deepEqual(s.backends.map((b) => b.priced), [false, true, false]);
    const local = s.backends[0];
    assert.equal(local.queue_depth, sum(m, 'switchboard_queue_depth', { model: 'local' }));
    assert.equal(local.busy_slots, sum(m, 'switchboard_busy_slots', { model: 'local' }));
    assert.equal(s.backends[1].queue_depth, null); // a cloud model has no local queue
    assert.equal(s.recent.capacity, 50);
    assert.equal(s.recent.total, sent.length);
    assert.equal(s.recent.decisions.length, sent.length);
    const d = s.recent.decisions.find((x) => x.backend === 'gpt' && x.status === 200);
    assert.equal(d.cost_microusd, 25);
    assert.equal(d.rule, 'gpt-to-cloud');
    assert.equal(d.sensitivity, 'medium'); // the e-mail address, detected
    assert.equal(d.prompt_tokens, 21);
    for (const key of ['time_ms', 'request_id', 'api', 'model', 'backend', 'rule', 'reason', 'sensitivity', 'status', 'error_class', 'attempts', 'latency_ms', 'ttft_ms']) {
      assert.ok(key in d, `decision.${key}`);
    }
    assert.ok(!res.text.includes(EMAIL) && !res.text.includes('ui-prompt-7731'), 'the summary holds prompt text');
  });

  it('shows a banner while the summary fails and clears it when it recovers', async () => {
    const { page, problems } = await openPage(server);
    await waitForPolls(page, 1);
    await page.route('**/ui/api/summary', (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { message: 'summary down for the test', type: 'server_error', param: null, code: null } }),
      }),
    );
    await page.waitForSelector('[data-banner]:not([hidden])', { timeout: WAIT_MS });
    assert.equal(await page.getAttribute('body', 'data-state'), 'error');
    assert.match(await page.textContent('[data-banner]'), /HTTP 503 \(summary down for the test\)/);
    assert.equal(await page.getAttribute('[data-banner]', 'role'), 'alert');
    // The last numbers stay on screen meanwhile.
    assert.equal(await tileValue(page, 'requests'), String(sent.length));
    await page.unroute('**/ui/api/summary');
    await page.waitForSelector('[data-banner][hidden]', { state: 'attached', timeout: WAIT_MS });
    assert.equal(await page.getAttribute('body', 'data-state'), 'ok');
    // The only errors are the browser's notes of the 503s.
    assert.ok(problems.length > 0);
    for (const p of problems) assert.match(p, /status of 503/);
    await page.close();
  });

  it('follows the light and dark color schemes, with labelled tables', async () => {
    const { page, problems } = await openPage(server);
    await waitForPolls(page, 1);
    await page.emulateMedia({ colorScheme: 'light' });
    const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(light, dark);
    for (const table of ['backends', 'models', 'recent']) {
      assert.equal(await page.locator(`[data-table="${table}"] caption`).count(), 1, table);
      const scopes = await page.$$eval(`[data-table="${table}"] thead th`, (ths) => ths.map((th) => th.getAttribute('scope')));
      assert.ok(scopes.length > 0 && scopes.every((s) => s === 'col'), `${table}: ${scopes}`);
    }
    assert.deepEqual(problems, []);
    await page.close();
  });
});

/* ---------------------------------------------------------------------------------------------
 * Turned off
 * ------------------------------------------------------------------------------------------- */
describe('dashboard turned off', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;

  before(async () => {
    fake = await startOpenAIFake();
    server = await startServer(makeConfig({ models: [cloudModel(fake)], extra: { ui: { enabled: false } } }));
  });

  after(async () => {
    if (fake) await fake.close();
    if (server) {
      const st = await server.stop();
      assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}\n${server.output().slice(-3000)}`);
    }
  });

  it('answers 404 at every /ui path', async () => {
    for (const path of ['/ui', '/ui/', '/ui/app.js', '/ui/api/summary']) {
      assertOpenAIError(await get(server, path), 404, { code: 'unknown_url' });
    }
    assert.equal((await get(server, '/metrics')).status, 200);
  });
});
