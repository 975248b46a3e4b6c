// Cloud backends over HTTPS with HTTP/2, as the providers serve them: a fake OpenAI server with a
// self-signed certificate (made here with the openssl command) that negotiates h2 by ALPN. With
// the certificate as the model's ca_file, requests, streams and the official SDK work and arrive
// over HTTP/2 on one connection; without it, verification fails before a byte of the request is
// sent, and the client gets a 502 that says why.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { TEST_TIMEOUT_MS, startServer, makeConfig, makeTempDir, removeTempDir, post, postStream, chatStreamText, describeRes, assertOpenAIError } from './harness.mjs';
import { startOpenAIFake } from '../fakes/openai.mjs';

const CHAT = '/v1/chat/completions';
const once = { retries: { max: 0 }, breaker: { failures: 0 } };

/* A self-signed certificate for 127.0.0.1, which is its own CA. */
function makeCert(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=switchboard-test',
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(cert), certFile: cert };
}

function chatBody(model, extra = {}) {
  return { model, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8, ...extra };
}

describe('cloud backends over HTTPS and HTTP/2', { timeout: TEST_TIMEOUT_MS }, () => {
  let dir;
  let fake;
  let server;

  before(async () => {
    dir = makeTempDir('sb-tls-');
    const tls = makeCert(dir);
    fake = await startOpenAIFake({ tls });
    const base = { backend: 'openai', base_url: `${fake.url}/v1`, api_key: 'sk-test-tls-0123456789', ...once };
    server = await startServer(
      makeConfig({
        models: [
          { name: 'trusted', ...base, ca_file: tls.certFile },
          { name: 'untrusted', ...base },
        ],
        extra: { policy: { default: 'none' } },
      }),
    );
  });
  after(async () => {
    if (server) await server.stop();
    if (fake) await fake.close();
    if (dir) removeTempDir(dir);
  });

  it('a whole answer and a stream arrive over HTTP/2, on one connection', async () => {
    fake.reset();
    const before = fake.connections;
    const res = await post(server, CHAT, chatBody('trusted'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(typeof res.json.choices[0].message.content, 'string');
    const streamed = await postStream(server, CHAT, chatBody('trusted', { stream: true }));
    assert.equal(streamed.status, 200, describeRes(streamed));
    assert.ok(streamed.stream.done, streamed.text);
    assert.ok(chatStreamText(streamed.stream.chunks).length > 0, streamed.text);
    assert.equal(fake.requests.length, 2);
    for (const rec of fake.requests) assert.equal(rec.httpVersion, '2.0', `request ${rec.seq} used HTTP/${rec.httpVersion}`);
    assert.equal(fake.connections - before, 1, 'both requests should share one HTTP/2 connection');
    assert.equal(fake.requests[0].headers.authorization, 'Bearer sk-test-tls-0123456789');
  });

  it('the official OpenAI SDK works through it', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const out = await client.chat.completions.create(chatBody('trusted'));
    assert.equal(out.object, 'chat.completion');
    assert.equal(fake.last().httpVersion, '2.0');
  });

  it('a certificate the model does not trust is a 502 naming the cause, and nothing is sent', async () => {
    fake.reset();
    const res = await post(server, CHAT, chatBody('untrusted'));
    assertOpenAIError(res, 502, { type: 'server_error' });
    assert.match(res.json.error.message, /certificate/i, res.json.error.message);
    assert.equal(fake.requests.length, 0);
  });
});
