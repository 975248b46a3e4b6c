// Resilience end to end: the real binary with models that have `fallback:`, `retries:` and
// `breaker:`, in front of a fake OpenAI-compatible provider (tests/fakes/openai.mjs), a closed
// port (connection refused) and the tiny local model. Checks that a refused connection is retried
// and then falls back, that an open breaker is skipped without a try, that a prompt too long for a
// model's context goes to the next model untried, which upstream errors fall back (401, 5xx) and
// which do not (400), that a stream failing after its first chunk ends with an error chunk and no
// fallback, and that when everything fails the client gets one 502 naming what was tried.
//
// The tests need `switchboard serve` to wrap its backends in fallback chains (sb_resil_new, see
// src/resil/resil.h); until it does, they skip themselves, detected by the absence of the
// "fallback chain" line the chains log at startup.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  CHAT_MODEL,
  startServer,
  makeConfig,
  post,
  request,
  sseData,
  chatStreamText,
  describeRes,
  closedPort,
  stopClean,
} from './harness.mjs';
import { startOpenAIFake, errorReply, streamChunks } from '../fakes/openai.mjs';

const CHAT = '/v1/chat/completions';
const FAKE_TEXT = 'Hello from the fake.';
/* Well over 128 tokens of the tiny model's 512-token vocabulary (a short chat fits in 128). */
const LONG_PROMPT = (
  'Once upon a time there was a little girl named Lily who loved to play in the big green park ' +
  'near her house with her brown dog Max and her best friend Tom, and every day they ran and ' +
  'jumped and laughed until the sun went down. '
).repeat(3);

function chatBody(model, content = 'Say hello.', extra = {}) {
  return { model, messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0, ...extra };
}

/* Reads a streamed chat completion as it arrives; onData sees each parsed chunk. */
async function readStream(body, { onData } = {}) {
  const res = await fetch(server.url + CHAT, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const out = { status: res.status, headers: res.headers, chunks: [], datas: [], done: false };
  if (res.status !== 200) {
    out.text = await res.text();
    return out;
  }
  for await (const data of sseData(res)) {
    out.datas.push(data);
    if (data === '[DONE]') {
      out.done = true;
      continue;
    }
    const c = JSON.parse(data);
    out.chunks.push(c);
    onData?.(c);
  }
  return out;
}

/* Fast retries so that tests never wait on a backoff of consequence. */
const quickRetries = (max) => ({ max, base_ms: 1, max_ms: 2 });
/* One try, no breaker: the backend's own behaviour, untouched. */
const once = { retries: { max: 0 }, breaker: { failures: 0 } };

let fake;
let server;
let wired = false;

before(async () => {
  fake = await startOpenAIFake();
  const dead = await closedPort();
  const remote = (name, extra = {}) => ({
    name,
    backend: 'openai',
    base_url: `${fake.url}/v1`,
    api_key: 'sk-test-fallback',
    ...once,
    ...extra,
  });
  const deadRemote = (name, extra = {}) =>
    remote(name, { base_url: `http://127.0.0.1:${dead}/v1`, timeouts: { connect_ms: 2000 }, ...extra });
  const local = (name, context, extra = {}) => ({
    name,
    backend: 'local',
    path: CHAT_MODEL,
    context,
    parallel: 2,
    threads: 1,
    ...once,
    ...extra,
  });
  server = await startServer(
    makeConfig({
      models: [
        remote('backup'),
        // Two tries (one retry) of a refused connection open the breaker (failures: 2).
        deadRemote('primary', {
          retries: quickRetries(1),
          breaker: { failures: 2, open_ms: 600000 },
          fallback: ['backup'],
        }),
        remote('strict', { retries: quickRetries(2), fallback: ['backup'] }),
        remote('busy', { retries: quickRetries(1), fallback: ['backup'] }),
        remote('flaky', { retries: quickRetries(2), fallback: ['backup'] }),
        local('small', 128, { fallback: ['big'] }),
        local('big', 1024),
        deadRemote('dead1', { fallback: ['dead2'] }),
        deadRemote('dead2'),
      ],
      // These tests pin each model's own chain; the hybrid default would add local fallbacks.
      extra: { policy: { default: 'none' } },
    }),
  );
  wired = /fallback chain primary -> backup/.test(server.output());
});

after(async () => {
  if (fake) await fake.close();
  if (server) {
    // One answered request first: the loop is running, so SIGTERM finds its handler (main prints
    // "listening" before sb_server_run installs it; with every test skipped, stop would race it).
    await request(server, 'GET', '/health');
    await stopClean(server);
  }
});

/* Skips a test while `serve` does not build chains yet. */
function needChains(t) {
  if (wired) return false;
  t.skip('TODO(lead): cmd_serve must serve sb_resil_backends(sb_resil_new(...)); see src/resil/resil.h');
  return true;
}

describe('fallback, retries and breakers', { timeout: TEST_TIMEOUT_MS }, () => {
  it('a refused connection is retried, then the fallback serves', async (t) => {
    if (needChains(t)) return;
    fake.reset();
    const out = await readStream(chatBody('primary'));
    assert.equal(out.status, 200, out.text);
    assert.equal(out.headers.get('x-switchboard-backend'), 'backup');
    assert.equal(chatStreamText(out.chunks), FAKE_TEXT);
    assert.ok(out.done, 'the stream ends with [DONE]');
    assert.equal(fake.requests.length, 1, 'only the fallback reached the provider');
    assert.equal(fake.last().json.model, 'backup');
    assert.match(server.output(), /retrying primary \(connect\)/);
  });

  it('an open breaker skips the backend without trying it', async (t) => {
    if (needChains(t)) return;
    fake.reset();
    const res = await post(server, CHAT, chatBody('primary'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'backup');
    assert.equal(res.json.choices[0].message.content, FAKE_TEXT);
    assert.match(server.output(), /skipping primary: circuit breaker open/);
  });

  it("a prompt longer than a model's context goes to the next model, untried", async (t) => {
    if (needChains(t)) return;
    const res = await post(server, CHAT, chatBody('small', LONG_PROMPT));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'big');
    assert.match(server.output(), /skipping small: ~\d+ prompt tokens, context 128/);
    // A short one stays on the first model.
    const short = await post(server, CHAT, chatBody('small', 'Hi'));
    assert.equal(short.status, 200, describeRes(short));
    assert.equal(short.headers.get('x-switchboard-backend'), 'small');
  });

  it("the client's own error (400) is neither retried nor passed to the fallback", async (t) => {
    if (needChains(t)) return;
    fake.reset();
    fake.push(errorReply(400, "Unsupported parameter: 'foo'."));
    const res = await post(server, CHAT, chatBody('strict'));
    assert.equal(res.status, 400, describeRes(res));
    assert.match(res.json.error.message, /Unsupported parameter/);
    assert.equal(fake.requests.length, 1);
  });

  it('bad credentials (401) fall back at once, without a retry', async (t) => {
    if (needChains(t)) return;
    fake.reset();
    fake.push(errorReply(401, 'Incorrect API key provided.'));
    const res = await post(server, CHAT, chatBody('strict'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'backup');
    assert.deepEqual(
      fake.requests.map((r) => r.json.model),
      ['strict', 'backup'],
    );
  });

  it('server errors (5xx) are retried, then fall back', async (t) => {
    if (needChains(t)) return;
    fake.reset();
    fake.push(errorReply(500, 'boom'), errorReply(503, 'overloaded', { retryAfter: 0 }));
    const res = await post(server, CHAT, chatBody('busy'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'backup');
    assert.deepEqual(
      fake.requests.map((r) => r.json.model),
      ['busy', 'busy', 'backup'],
    );
  });

  it('a stream that fails after its first chunk ends in an error chunk: no retry, no fallback', async (t) => {
    if (needChains(t)) return;
    fake.reset();
    let release;
    const gate = new Promise((resolve) => {
      release = resolve;
    });
    // The reset waits until the client has seen words: the failure is after output began.
    fake.push((rec) => {
      const all = streamChunks(rec, { text: 'Hello there, this stream will break.' });
      return { headers: { 'content-type': 'text/event-stream' }, chunks: [...all.slice(0, 3), { waitFor: gate }], reset: true };
    });
    const out = await readStream(chatBody('flaky'), {
      onData: (c) => {
        if (c?.choices?.[0]?.delta?.content) release();
      },
    });
    assert.equal(out.status, 200);
    assert.equal(out.headers.get('x-switchboard-backend'), 'flaky');
    assert.ok(!out.done, `no [DONE] after a failure: ${out.datas.join(' | ')}`);
    const last = out.chunks[out.chunks.length - 1];
    assert.ok(last?.error, `the last chunk is an error: ${out.datas.join(' | ')}`);
    assert.ok(chatStreamText(out.chunks).startsWith('Hello '));
    assert.equal(fake.requests.length, 1, 'neither retried nor passed on');
  });

  it('when every backend fails the client gets one 502 naming what was tried', async (t) => {
    if (needChains(t)) return;
    const res = await post(server, CHAT, chatBody('dead1'));
    assert.equal(res.status, 502, describeRes(res));
    assert.match(res.json.error.message, /dead1: 1 try, last connect/);
    assert.match(res.json.error.message, /dead2: 1 try, last connect/);
  });

  it('every response says after how many attempts', { todo: 'HTTP: x-switchboard-attempts from START.attempts' }, async (t) => {
    if (needChains(t)) return;
    fake.reset();
    fake.push(errorReply(500, 'boom'), errorReply(500, 'boom'));
    const res = await request(server, 'POST', CHAT, { body: chatBody('busy') });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-attempts'), '3');
  });
});
