// The server's life: discovery endpoints, startup failures and `config check`, a client that
// disconnects mid-stream, concurrent requests under batching, and SIGTERM with a request in flight.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  TEST_TIMEOUT_MS,
  EXIT_TIMEOUT_MS,
  startServer,
  makeConfig,
  modelEntry,
  makeTempDir,
  removeTempDir,
  writeConfig,
  runBinary,
  serveArgs,
  waitForExit,
  post,
  get,
  greedyChat,
  sseData,
  describeRes,
  pollUntil,
  usageCounts,
} from './harness.mjs';

const CHAT = '/v1/chat/completions';
const STORY = 'Once upon a time, there was a little girl named Lily.';

/* Opens a streaming chat request and reads `n` content chunks from it. Returns the live reader
 * (an async iterator over data payloads), the AbortController, and the chunks seen. */
async function openStream(server, body, n) {
  const ac = new AbortController();
  const res = await fetch(server.url + CHAT, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
    signal: ac.signal,
  });
  if (res.status !== 200) assert.fail(`stream did not start: ${res.status} ${await res.text()}`);
  const it = sseData(res);
  const seen = [];
  while (seen.length < n) {
    const { value, done } = await it.next();
    assert.ok(!done, `stream ended after ${seen.length} events`);
    assert.notEqual(value, '[DONE]', `stream finished after ${seen.length} chunks; need a longer generation`);
    seen.push(JSON.parse(value));
  }
  return { ac, it, seen };
}

describe('discovery endpoints', { timeout: TEST_TIMEOUT_MS }, () => {
  let server;
  before(async () => {
    server = await startServer(makeConfig());
  });
  after(async () => {
    await server?.stop();
  });

  it('GET /v1/models lists "local"', async () => {
    const res = await get(server, '/v1/models');
    assert.equal(res.status, 200, describeRes(res));
    assert.match(res.headers.get('content-type') || '', /application\/json/);
    assert.equal(res.json.object, 'list');
    assert.ok(Array.isArray(res.json.data), res.text);
    const local = res.json.data.find((m) => m.id === 'local');
    assert.ok(local, `no "local" in ${res.text}`);
    assert.equal(local.object, 'model');
  });

  it('GET /health → 200', async () => {
    const res = await get(server, '/health');
    assert.equal(res.status, 200, describeRes(res));
  });

  it('GET /ready → 200 once the model is loaded', async () => {
    const res = await get(server, '/ready');
    assert.equal(res.status, 200, describeRes(res));
  });
});

describe('startup failures', { timeout: TEST_TIMEOUT_MS }, () => {
  let dir;
  before(() => {
    dir = makeTempDir();
  });
  after(() => removeTempDir(dir));

  it('a model path that does not exist → exit status 2, stderr names the file', async () => {
    const missing = path.join(dir, 'no-such-model.gguf');
    const cfg = writeConfig(dir, makeConfig({ model: { path: missing } }), 'missing.yaml');
    const r = await runBinary(serveArgs(cfg));
    assert.equal(r.code, 2, `exit status\n${r.output}`);
    assert.ok(r.stderr.includes('no-such-model.gguf'), `stderr does not name the file\n${r.output}`);
    assert.doesNotMatch(r.stderr, /listening on/, r.output);
  });

  it('a model file that is not GGUF → exit status 2 with a clear message', async () => {
    const junk = path.join(dir, 'junk-model.gguf');
    writeFileSync(junk, randomBytes(64 * 1024));
    const cfg = writeConfig(dir, makeConfig({ model: { path: junk } }), 'junk.yaml');
    const r = await runBinary(serveArgs(cfg));
    assert.equal(r.code, 2, `exit status\n${r.output}`);
    assert.ok(r.stderr.includes('junk-model.gguf'), `stderr does not name the file\n${r.output}`);
    assert.match(r.stderr, /gguf/i, `stderr does not say what is wrong\n${r.output}`);
    assert.doesNotMatch(r.stderr, /listening on/, r.output);
  });

  it('`config check` on a valid config → exit status 0', async () => {
    const cfg = writeConfig(dir, makeConfig(), 'valid.yaml');
    const r = await runBinary(['config', 'check', cfg]);
    assert.equal(r.code, 0, r.output);
  });

  it('`config check` on a config with a bad value → non-zero, FILE:LINE:COL', async () => {
    const text = [
      'listen:',
      '  host: 127.0.0.1',
      '  port: not-a-port',
      'models:',
      '  - name: local',
      '    backend: local',
      `    path: ${JSON.stringify(modelEntry().path)}`,
      '',
    ].join('\n');
    const cfg = writeConfig(dir, text, 'bad-value.yaml');
    const r = await runBinary(['config', 'check', cfg]);
    assert.notEqual(r.code, 0, r.output);
    assert.ok(r.code !== null, `killed by a signal\n${r.output}`);
    const out = r.stderr + r.stdout;
    assert.ok(out.includes(`${cfg}:3:`), `no ${cfg}:3:COL in the output\n${r.output}`);
    assert.match(out, new RegExp(`${cfg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:\\d+`), r.output);
  });

  it('`config check` on a YAML syntax error → non-zero, FILE:LINE:COL', async () => {
    const cfg = writeConfig(dir, 'listen:\n  host: 127.0.0.1\n  port: [8080\nmodels: {\n', 'bad-syntax.yaml');
    const r = await runBinary(['config', 'check', cfg]);
    assert.notEqual(r.code, 0, r.output);
    assert.ok(r.code !== null, `killed by a signal\n${r.output}`);
    const esc = cfg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(r.stderr + r.stdout, new RegExp(`${esc}:\\d+:\\d+`), r.output);
  });
});

describe('client disconnect mid-stream', { timeout: TEST_TIMEOUT_MS }, () => {
  let server;
  before(async () => {
    // One slot: if an aborted request kept its slot, nothing else could ever run.
    server = await startServer(makeConfig({ model: { parallel: 1, context: 2048 } }));
  });
  after(async () => {
    await server?.stop();
  });

  it('an aborted stream frees its slot: the next request completes, /health answers', async () => {
    const long = greedyChat(STORY, { max_tokens: 1900, temperature: 1, seed: 7 });
    const { ac, it: reader } = await openStream(server, long, 2);
    ac.abort();
    await reader.return?.().catch(() => {});

    const h = await get(server, '/health');
    assert.equal(h.status, 200, describeRes(h));

    // parallel: 1, so this runs only once the aborted request has let go of the slot. A server
    // that answers "busy" while it notices the disconnect gets a bounded number of retries.
    const res = await pollUntil(
      async () => {
        const r = await post(server, CHAT, greedyChat('Tom had a red ball.', { max_tokens: 8 }));
        return r.status === 503 || r.status === 429 ? null : r;
      },
      { attempts: 100, intervalMs: 100 },
    );
    assert.ok(res, `still busy after the retries\n${server.output()}`);
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.usage.completion_tokens, 8);
  });

  it('repeated aborts do not leak slots', async () => {
    for (let i = 0; i < 5; i++) {
      const { ac, it: reader } = await openStream(server, greedyChat(STORY, { max_tokens: 1900, temperature: 1, seed: i }), 1);
      ac.abort();
      await reader.return?.().catch(() => {});
    }
    const res = await post(server, CHAT, greedyChat(STORY, { max_tokens: 4 }));
    assert.equal(res.status, 200, describeRes(res));
  });
});

describe('concurrency', { timeout: TEST_TIMEOUT_MS }, () => {
  let server;
  before(async () => {
    server = await startServer(makeConfig({ model: { parallel: 4, context: 2048 } }));
  });
  after(async () => {
    await server?.stop();
  });

  const prompts = [
    'Once upon a time',
    'Tom had a big red ball.',
    'Lily went to the park with her mom.',
    'The little bird could not fly.',
    'One day, a cat found a box.',
    'Sam and Sue liked to play in the sun.',
  ];

  it('6 concurrent greedy requests on 4 slots all succeed and match their solo results', async () => {
    const body = (p) => greedyChat(p, { max_tokens: 32 });
    const solo = [];
    for (const p of prompts) {
      const r = await post(server, CHAT, body(p));
      assert.equal(r.status, 200, describeRes(r));
      solo.push(r.json);
    }
    const together = await Promise.all(prompts.map((p) => post(server, CHAT, body(p))));
    together.forEach((r, i) => {
      assert.equal(r.status, 200, describeRes(r));
      // Prompt processing and greedy decoding of one sequence do not depend on which other
      // sequences share its batch (each row of the batch is computed independently and masked
      // KV cells contribute exact zeros), so the text is expected to be identical.
      assert.equal(r.json.choices[0].message.content, solo[i].choices[0].message.content, `prompt ${i}: ${prompts[i]}`);
      assert.deepEqual(usageCounts(r.json.usage), usageCounts(solo[i].usage), `prompt ${i} usage`);
      assert.equal(r.json.choices[0].finish_reason, solo[i].choices[0].finish_reason);
    });
  });
});

describe('SIGTERM', { timeout: TEST_TIMEOUT_MS }, () => {
  it('with a stream in flight: the stream ends and the server exits 0', async () => {
    const server = await startServer(makeConfig({ model: { parallel: 1, context: 2048 } }));
    try {
      const { it: reader } = await openStream(server, greedyChat(STORY, { max_tokens: 1900, temperature: 1, seed: 3 }), 1);
      server.child.proc.kill('SIGTERM');
      // The stream must end (finished or cancelled), not hang.
      let ended = false;
      try {
        for (;;) {
          const { done, value } = await reader.next();
          if (done || value === '[DONE]') break;
        }
        ended = true;
      } catch {
        ended = true; // the connection was closed under the reader: also an end
      }
      assert.ok(ended);
      const st = await waitForExit(server.child, EXIT_TIMEOUT_MS);
      assert.ok(st !== null, `server still running ${EXIT_TIMEOUT_MS} ms after SIGTERM\n${server.output()}`);
      assert.equal(st.signal, null, `killed by ${st.signal}\n${server.output()}`);
      assert.equal(st.code, 0, `exit status\n${server.output()}`);
    } finally {
      await server.stop();
    }
  });

  it('when idle: exits 0', async () => {
    const server = await startServer(makeConfig());
    const h = await get(server, '/health');
    assert.equal(h.status, 200);
    const st = await server.stop();
    assert.ok(st !== null, `needed SIGKILL\n${server.output()}`);
    assert.equal(st.signal, null, server.output());
    assert.equal(st.code, 0, server.output());
  });
});
