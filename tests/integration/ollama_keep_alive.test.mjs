// Ollama's keep_alive per request and its load / unload idiom, end to end on real local models,
// driven by the official `ollama` npm client and raw HTTP: a request's keep_alive replaces the
// model's own for its idle timer (seen in /api/ps's expires_at); /api/generate without a prompt
// and /api/chat without messages load the model ("done_reason": "load"), or unload it with
// keep_alive 0 ("unload"); keep_alive 0 on a real request unloads the model once it is done; and
// bad values are 400 in Ollama's error shape. Unloading happens on the model's worker after the
// answer, as in Ollama, so the tests poll /api/ps for it rather than wait a set time.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Ollama } from 'ollama';
import { TEST_TIMEOUT_MS, MODELS_DIR, startServer, makeConfig, modelEntry, post, get, describeRes } from './harness.mjs';

let server;
let ollama;

before(async () => {
  server = await startServer(
    makeConfig({
      models: [
        // Kept loaded for good unless a request says otherwise (the default keep_alive, -1).
        modelEntry({ name: 'local', load: 'lazy' }),
        // Configured to stay five minutes.
        modelEntry({ name: 'five', load: 'lazy', keep_alive: 300 }),
        modelEntry({ name: 'embedder', path: path.join(MODELS_DIR, 'stories260K.gguf'), embeddings: true }),
      ],
    }),
  );
  ollama = new Ollama({ host: server.url });
});

after(async () => {
  if (server) {
    const st = await server.stop();
    assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}\n${server.output().slice(-3000)}`);
    assert.doesNotMatch(server.output(), /Sanitizer|runtime error/);
  }
});

const OPTIONS = { temperature: 0, seed: 42, num_predict: 8 };
/* Ollama's expires_at for a model kept loaded for good: now plus Go's longest duration (~292 y). */
const FOREVER_AFTER = Date.UTC(2200, 0, 1);

/* The /api/ps entry of model, or undefined when it is not loaded. */
async function psEntry(model) {
  const res = await get(server, '/api/ps');
  assert.equal(res.status, 200, describeRes(res));
  return res.json.models.find((m) => m.name === model);
}

/* Polls /api/ps until model is gone (unloading runs after the answer); the test's timeout is the
 * hang guard. */
async function awaitUnloaded(model) {
  while (await psEntry(model)) await sleep(20);
}

/* Runs fn and checks that model's expires_at is seconds after the moment the model went idle:
 * between the start of fn and the end of the /api/ps that reads it. */
async function expectExpiry(model, seconds, fn) {
  const before = Math.floor(Date.now() / 1000);
  await fn();
  const entry = await psEntry(model);
  const after = Math.ceil(Date.now() / 1000);
  assert.ok(entry, `${model} is loaded`);
  const at = new Date(entry.expires_at).getTime() / 1000;
  assert.ok(at >= before + seconds && at <= after + seconds + 1, `expires_at ${entry.expires_at}: ${seconds} s after ${before}..${after}`);
}

/* A 400 in Ollama's shape whose message names keep_alive. */
function assertKeepAliveError(res) {
  assert.equal(res.status, 400, describeRes(res));
  assert.deepEqual(Object.keys(res.json ?? {}), ['error'], res.text);
  assert.match(res.json.error, /keep_alive/);
}

describe('the load / unload idiom', { timeout: TEST_TIMEOUT_MS }, () => {
  it('generate without a prompt loads the model and answers "load"', async () => {
    assert.equal(await psEntry('local'), undefined, 'a lazy model starts unloaded');
    const res = await ollama.generate({ model: 'local', prompt: '', stream: false });
    assert.equal(res.model, 'local');
    assert.equal(res.response, '');
    assert.equal(res.done, true);
    assert.equal(res.done_reason, 'load');
    assert.match(String(res.created_at), /\d{4}-\d\d-\d\d/);
    const entry = await psEntry('local');
    assert.ok(entry, 'loaded');
    assert.ok(new Date(entry.expires_at).getTime() > FOREVER_AFTER, 'kept for good, as configured');
  });

  it('generate without a prompt and keep_alive 0 unloads it and answers "unload"', async () => {
    await ollama.generate({ model: 'local', prompt: '', stream: false });
    const res = await post(server, '/api/generate', { model: 'local', keep_alive: 0, stream: false });
    assert.equal(res.status, 200, describeRes(res));
    assert.deepEqual(Object.keys(res.json).sort(), ['created_at', 'done', 'done_reason', 'model', 'response']);
    assert.equal(res.json.model, 'local');
    assert.equal(res.json.response, '');
    assert.equal(res.json.done, true);
    assert.equal(res.json.done_reason, 'unload');
    await awaitUnloaded('local');
    // Unloading a model that is not loaded is answered the same, and loads nothing.
    const again = await ollama.generate({ model: 'local', prompt: '', keep_alive: 0, stream: false });
    assert.equal(again.done_reason, 'unload');
    assert.equal(await psEntry('local'), undefined);
  });

  it('chat without messages loads, and with keep_alive 0 unloads', async () => {
    const loaded = await ollama.chat({ model: 'local', messages: [], stream: false });
    assert.equal(loaded.done_reason, 'load');
    assert.deepEqual(loaded.message, { role: 'assistant', content: '' });
    assert.ok(await psEntry('local'));
    const unloaded = await ollama.chat({ model: 'local', messages: [], keep_alive: '0s', stream: false });
    assert.equal(unloaded.done_reason, 'unload');
    assert.equal(unloaded.message.role, 'assistant');
    await awaitUnloaded('local');
    // Streamed (the default): one NDJSON line.
    const res = await post(server, '/api/chat', { model: 'local' });
    assert.equal(res.status, 200, describeRes(res));
    const lines = res.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 1);
    assert.equal(lines[0].done_reason, 'load');
  });

  it('an embeddings model unloads the same way', async () => {
    assert.ok(await psEntry('embedder'), 'loaded at startup');
    const res = await ollama.generate({ model: 'embedder', prompt: '', keep_alive: 0, stream: false });
    assert.equal(res.done_reason, 'unload');
    await awaitUnloaded('embedder');
    const emb = await ollama.embed({ model: 'embedder', input: 'a cat' });
    assert.equal(emb.embeddings.length, 1);
    assert.ok(await psEntry('embedder'), 'loaded again by its next request');
  });
});

describe('keep_alive per request', { timeout: TEST_TIMEOUT_MS }, () => {
  it('a duration string replaces the configured keep_alive, and stays for later requests', async () => {
    await expectExpiry('local', 600, () =>
      ollama.generate({ model: 'local', prompt: 'Once upon a time', keep_alive: '10m', options: OPTIONS }),
    );
    // A request that does not say keeps the last one's, as Ollama's runner does.
    await expectExpiry('local', 600, () => ollama.generate({ model: 'local', prompt: 'Once', options: OPTIONS }));
    await expectExpiry('local', 5400, () =>
      ollama.chat({ model: 'local', messages: [{ role: 'user', content: 'Hi' }], keep_alive: '1h30m', options: OPTIONS }),
    );
    await expectExpiry('local', 90, () => post(server, '/api/generate', { model: 'local', keep_alive: '90s', stream: false }));
  });

  it('a number is seconds, and a negative one keeps the model loaded for good', async () => {
    await expectExpiry('five', 3600, () =>
      ollama.generate({ model: 'five', prompt: 'Once', keep_alive: 3600, options: OPTIONS }),
    );
    await ollama.generate({ model: 'five', prompt: 'Once', keep_alive: -1, options: OPTIONS });
    const entry = await psEntry('five');
    assert.ok(new Date(entry.expires_at).getTime() > FOREVER_AFTER, entry.expires_at);
  });

  it('keep_alive 0 on a real request answers it, then unloads; the next load is back to the config', async () => {
    const res = await ollama.generate({ model: 'five', prompt: 'Once upon a time', keep_alive: 0, options: OPTIONS });
    assert.ok(res.response.length > 0);
    assert.equal(res.done_reason, 'length');
    await awaitUnloaded('five');
    // Its next load serves with the configured five minutes.
    await expectExpiry('five', 300, () => ollama.generate({ model: 'five', prompt: 'Once', options: OPTIONS }));
  });

  it('keep_alive 0 on a streamed chat unloads once the stream is done', async () => {
    const parts = await ollama.chat({
      model: 'five',
      messages: [{ role: 'user', content: 'Tell me a story.' }],
      keep_alive: 0,
      stream: true,
      options: OPTIONS,
    });
    let last = null;
    for await (const p of parts) last = p;
    assert.equal(last.done, true);
    await awaitUnloaded('five');
  });

  it('/api/embed takes keep_alive too', async () => {
    await expectExpiry('embedder', 120, () => ollama.embed({ model: 'embedder', input: 'a dog', keep_alive: '2m' }));
    const res = await post(server, '/api/embed', { model: 'embedder', input: 'a dog', keep_alive: 0 });
    assert.equal(res.status, 200, describeRes(res));
    await awaitUnloaded('embedder');
  });

  it('bad values are 400 in Ollama\'s shape, and change nothing', async () => {
    await ollama.generate({ model: 'local', prompt: '', keep_alive: -1, stream: false });
    for (const keep_alive of ['5 parsecs', '', '1d', '1h5', {}, { minutes: 5 }, [], true]) {
      assertKeepAliveError(await post(server, '/api/generate', { model: 'local', prompt: 'x', keep_alive }));
      assertKeepAliveError(await post(server, '/api/chat', { model: 'local', messages: [], keep_alive }));
      assertKeepAliveError(await post(server, '/api/embed', { model: 'embedder', input: 'x', keep_alive }));
    }
    await assert.rejects(ollama.generate({ model: 'local', prompt: 'x', keep_alive: '5 parsecs' }), (err) => {
      assert.equal(err.status_code, 400);
      assert.match(err.error, /'5 parsecs' is not a duration/);
      return true;
    });
    const entry = await psEntry('local');
    assert.ok(new Date(entry.expires_at).getTime() > FOREVER_AFTER, 'the refused requests changed nothing');
    // A string of digits is seconds, as OLLAMA_KEEP_ALIVE reads it.
    await expectExpiry('local', 120, () => post(server, '/api/generate', { model: 'local', keep_alive: '120', stream: false }));
  });
});
