// Embeddings end to end: POST /v1/embeddings (raw HTTP and the official OpenAI SDK, which asks for
// base64 unless told otherwise) and Ollama's /api/embed, on the real stories260K model served as
// an embeddings model, with `dimensions` shortening the vector the Matryoshka way (the first N
// components, back to unit length); bad `dimensions` refused in each API's error shape; and a cloud
// OpenAI backend (tests/fakes/openai.mjs) that gets `dimensions` as it was sent and whose vectors
// come back untouched.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import path from 'node:path';
import {
  TEST_TIMEOUT_MS,
  MODELS_DIR,
  startServer,
  makeConfig,
  modelEntry,
  post,
  describeRes,
  cloudModel,
  stopClean,
} from './harness.mjs';
import { startOpenAIFake, reply } from '../fakes/openai.mjs';

const WIDTH = 64; // stories260K's embedding size
const INPUTS = ['a cat sat on the mat', 'the dog ran home'];

let fake;
let server;
let client;

before(async () => {
  fake = await startOpenAIFake();
  server = await startServer(
    makeConfig({
      models: [
        modelEntry({ name: 'embedder', path: path.join(MODELS_DIR, 'stories260K.gguf'), embeddings: true }),
        cloudModel(fake, 'cloud-embed', { upstream_model: 'text-embedding-3-small', embeddings: true }),
      ],
    }),
  );
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
});

after(async () => {
  if (fake) await fake.close();
  if (server) {
    await stopClean(server);
  }
});

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

/* The first n components of v scaled to unit length: what `dimensions: n` must give. */
function shortened(v, n) {
  const head = v.slice(0, n);
  const len = norm(head);
  return head.map((x) => x / len);
}

function assertClose(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) < 1e-5, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/* Little-endian float32 from OpenAI's base64 encoding_format. */
function decodeBase64(s) {
  const bytes = Buffer.from(s, 'base64');
  assert.equal(bytes.length % 4, 0);
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
}

async function embedFloats(body) {
  const res = await post(server, '/v1/embeddings', { model: 'embedder', encoding_format: 'float', ...body });
  assert.equal(res.status, 200, describeRes(res));
  return res.json.data.map((d) => d.embedding);
}

/* An OpenAI error: the status and {"error": {message, type, param, code}}. */
function assertOpenAIError(res, status, param, pattern) {
  assert.equal(res.status, status, describeRes(res));
  assert.deepEqual(Object.keys(res.json?.error ?? {}).sort(), ['code', 'message', 'param', 'type'], res.text);
  assert.equal(res.json.error.type, 'invalid_request_error');
  assert.equal(res.json.error.param, param);
  if (pattern) assert.match(res.json.error.message, pattern);
}

describe('dimensions on a local embeddings model', { timeout: TEST_TIMEOUT_MS }, () => {
  it('shortens each vector to its first N components at unit length (float)', async () => {
    const full = await embedFloats({ input: INPUTS });
    assert.equal(full.length, 2);
    assert.equal(full[0].length, WIDTH);
    for (const n of [1, 8, 32, WIDTH - 1]) {
      const short = await embedFloats({ input: INPUTS, dimensions: n });
      for (let k = 0; k < INPUTS.length; k++) {
        assert.equal(short[k].length, n, `dimensions ${n}`);
        assert.ok(Math.abs(norm(short[k]) - 1) < 1e-5, `unit length at ${n}: ${norm(short[k])}`);
        assertClose(short[k], shortened(full[k], n), `input ${k}, dimensions ${n}`);
      }
    }
    const all = await embedFloats({ input: INPUTS, dimensions: WIDTH });
    assertClose(all[0], full[0], 'dimensions = the model\'s width');
  });

  it('base64 carries the same shortened vector', async () => {
    const [floats] = await embedFloats({ input: INPUTS[0], dimensions: 12 });
    const res = await post(server, '/v1/embeddings', {
      model: 'embedder',
      input: INPUTS[0],
      dimensions: 12,
      encoding_format: 'base64',
    });
    assert.equal(res.status, 200, describeRes(res));
    assertClose(decodeBase64(res.json.data[0].embedding), floats, 'base64');
  });

  it('the OpenAI SDK asks with dimensions (base64 by default, and float)', async () => {
    const full = await embedFloats({ input: INPUTS });
    const viaBase64 = await client.embeddings.create({ model: 'embedder', input: INPUTS, dimensions: 16 });
    assert.equal(viaBase64.data.length, 2);
    assert.equal(viaBase64.model, 'embedder');
    assert.ok(viaBase64.usage.prompt_tokens > 0);
    const viaFloat = await client.embeddings.create({
      model: 'embedder',
      input: INPUTS,
      dimensions: 16,
      encoding_format: 'float',
    });
    for (let k = 0; k < INPUTS.length; k++) {
      assertClose(viaBase64.data[k].embedding, shortened(full[k], 16), `SDK default, input ${k}`);
      assertClose(viaFloat.data[k].embedding, shortened(full[k], 16), `SDK float, input ${k}`);
    }
  });

  it('Ollama\'s /api/embed shortens the same way', async () => {
    const [full] = await embedFloats({ input: INPUTS[1] });
    const res = await post(server, '/api/embed', { model: 'embedder', input: INPUTS[1], dimensions: 5 });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.embeddings.length, 1);
    assertClose(res.json.embeddings[0], shortened(full, 5), '/api/embed');
  });

  it('bad dimensions are 400 with param "dimensions" in OpenAI\'s shape', async () => {
    const body = (dimensions) => ({ model: 'embedder', input: 'x', dimensions });
    assertOpenAIError(await post(server, '/v1/embeddings', body(WIDTH + 1)), 400, 'dimensions', /between 1 and 64/);
    assertOpenAIError(await post(server, '/v1/embeddings', body(100000)), 400, 'dimensions', /64-dimensional/);
    assertOpenAIError(await post(server, '/v1/embeddings', body(0)), 400, 'dimensions');
    assertOpenAIError(await post(server, '/v1/embeddings', body(-3)), 400, 'dimensions');
    assertOpenAIError(await post(server, '/v1/embeddings', body(2.5)), 400, 'dimensions', /integer/);
    assertOpenAIError(await post(server, '/v1/embeddings', body('8')), 400, 'dimensions', /integer/);
    await assert.rejects(
      client.embeddings.create({ model: 'embedder', input: 'x', dimensions: WIDTH * 2 }),
      (err) => {
        assert.equal(err.status, 400);
        assert.equal(err.param, 'dimensions');
        assert.equal(err.type, 'invalid_request_error');
        return true;
      },
    );
  });

  it('bad dimensions are 400 in Ollama\'s shape on /api/embed', async () => {
    for (const dimensions of [WIDTH + 1, 0, 1.5, 'all']) {
      const res = await post(server, '/api/embed', { model: 'embedder', input: 'x', dimensions });
      assert.equal(res.status, 400, describeRes(res));
      assert.deepEqual(Object.keys(res.json ?? {}), ['error'], res.text);
      assert.match(res.json.error, /dimensions/);
    }
  });
});

describe('dimensions through a cloud OpenAI backend', { timeout: TEST_TIMEOUT_MS }, () => {
  it('goes upstream as sent, and the provider\'s vectors come back untouched', async () => {
    // Not unit length and longer than asked: Switchboard must not renormalize or cut a provider's.
    const vec = [0.5, -0.25, 1, 2];
    fake.push(reply({ embedding: vec }));
    const res = await client.embeddings.create({ model: 'cloud-embed', input: INPUTS, dimensions: 256 });
    const sent = fake.last().json;
    assert.equal(fake.last().path, '/v1/embeddings');
    assert.equal(sent.model, 'text-embedding-3-small');
    assert.equal(sent.dimensions, 256);
    assert.deepEqual(sent.input, INPUTS);
    assert.equal(res.data.length, 2);
    assert.deepEqual(res.data[1].embedding, vec);

    fake.push(reply({ embedding: vec }));
    const ollamaRes = await post(server, '/api/embed', { model: 'cloud-embed', input: 'x', dimensions: 3 });
    assert.equal(ollamaRes.status, 200, describeRes(ollamaRes));
    assert.equal(fake.last().json.dimensions, 3);
    assert.deepEqual(ollamaRes.json.embeddings[0], vec);
  });
});
