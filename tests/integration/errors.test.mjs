// Bad and hostile input: every failure is an HTTP status with the OpenAI error shape
// {"error":{"message","type","param","code"}}, and the server stays up afterwards.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  request,
  post,
  get,
  greedyChat,
  greedyCompletion,
  assertOpenAIError,
  describeRes,
} from './harness.mjs';

const CHAT = '/v1/chat/completions';
// ~400 tokens of story text: far beyond a 64-token context, well under a 4 KiB body.
const LONG_PROMPT = 'Once upon a time there was a little dog who liked to run in the park. '.repeat(24);

describe('errors', { timeout: TEST_TIMEOUT_MS }, () => {
  let server; // default limits
  let small; // max_body_bytes 4096, context 64
  before(async () => {
    server = await startServer(makeConfig());
    small = await startServer(
      makeConfig({ listen: { max_body_bytes: 4096 }, model: { context: 64, parallel: 1 } }),
    );
  });
  after(async () => {
    await server?.stop();
    await small?.stop();
  });

  async function assertAlive(s) {
    const h = await get(s, '/health');
    assert.equal(h.status, 200, `server not healthy afterwards: ${describeRes(h)}\n${s.output()}`);
  }

  it('malformed JSON → 400', async () => {
    const res = await post(server, CHAT, '{"model": "local", "messages": [');
    assertOpenAIError(res, 400);
  });

  it('a body that is JSON but not an object → 400', async () => {
    assertOpenAIError(await post(server, CHAT, '[1, 2, 3]'), 400);
  });

  it('wrong type for a field (temperature: "hot") → 400, param temperature', async () => {
    const res = await post(server, CHAT, greedyChat('Hi', { temperature: 'hot' }));
    assertOpenAIError(res, 400, { param: 'temperature' });
  });

  it('out-of-range value (temperature: -1) → 400, param temperature', async () => {
    const res = await post(server, CHAT, greedyChat('Hi', { temperature: -1 }));
    assertOpenAIError(res, 400, { param: 'temperature' });
  });

  it('missing messages → 400', async () => {
    const res = await post(server, CHAT, { model: 'local', max_tokens: 4 });
    const err = assertOpenAIError(res, 400);
    assert.match(err.param ?? err.message, /messages/);
  });

  it('empty messages [] → 400', async () => {
    const res = await post(server, CHAT, { model: 'local', messages: [], max_tokens: 4 });
    const err = assertOpenAIError(res, 400);
    assert.match(err.param ?? err.message, /messages/);
  });

  it('a message with an unknown role → 400', async () => {
    const res = await post(server, CHAT, { model: 'local', messages: [{ role: 'wizard', content: 'Hi' }] });
    assertOpenAIError(res, 400);
  });

  it('n: 2 → 400, param n', async () => {
    const res = await post(server, CHAT, greedyChat('Hi', { n: 2 }));
    assertOpenAIError(res, 400, { param: 'n' });
  });

  it('missing prompt on /v1/completions → 400', async () => {
    assertOpenAIError(await post(server, '/v1/completions', { model: 'local', max_tokens: 4 }), 400);
  });

  it('unknown model → 404, code model_not_found', async () => {
    const res = await post(server, CHAT, { ...greedyChat('Hi'), model: 'no-such-model' });
    assertOpenAIError(res, 404, { code: 'model_not_found' });
  });

  it('unknown model on /v1/completions → 404, code model_not_found', async () => {
    const res = await post(server, '/v1/completions', { ...greedyCompletion('Hi'), model: 'no-such-model' });
    assertOpenAIError(res, 404, { code: 'model_not_found' });
  });

  it('unknown path → 404', async () => {
    assertOpenAIError(await post(server, '/v1/no-such-endpoint', greedyChat('Hi')), 404);
    assertOpenAIError(await get(server, '/no/such/path'), 404);
  });

  it('wrong method (GET /v1/chat/completions) → 405 with Allow: POST', async () => {
    const res = await get(server, CHAT);
    assertOpenAIError(res, 405);
    assert.match(res.headers.get('allow') || '', /POST/, `Allow header: ${res.headers.get('allow')}`);
  });

  it('body over max_body_bytes (Content-Length) → 413 with a JSON error', async () => {
    const body = JSON.stringify(greedyChat('x'.repeat(8192)));
    assertOpenAIError(await post(small, CHAT, body), 413);
    await assertAlive(small);
  });

  it('body over max_body_bytes (chunked, no Content-Length) → 413 with a JSON error', async () => {
    const bytes = new TextEncoder().encode(JSON.stringify(greedyChat('y'.repeat(8192))));
    const half = bytes.length >> 1;
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(bytes.subarray(0, half));
        c.enqueue(bytes.subarray(half));
        c.close();
      },
    });
    let res;
    try {
      res = await fetch(small.url + CHAT, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      });
    } catch (e) {
      // The server must read (and drop) the rest of the body before closing, or a client that is
      // still sending sees a broken connection instead of the 413.
      assert.fail(`no 413 response, the connection broke: ${e.message} (${e.cause?.code ?? e.cause?.message})`);
    }
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    assertOpenAIError({ status: res.status, headers: res.headers, text, json }, 413);
    await assertAlive(small);
  });

  it('a body just under max_body_bytes is accepted', async () => {
    const body = greedyChat('Hi', { max_tokens: 2 });
    const fixed = JSON.stringify(body).length;
    body.user = 'u'.repeat(4096 - fixed - ',"user":""'.length);
    const text = JSON.stringify(body);
    assert.equal(text.length, 4096);
    const res = await post(small, CHAT, text);
    assert.equal(res.status, 200, describeRes(res));
  });

  it('prompt longer than the context → 400, code context_length_exceeded', async () => {
    const res = await post(small, CHAT, greedyChat(LONG_PROMPT, { max_tokens: 4 }));
    assertOpenAIError(res, 400, { code: 'context_length_exceeded' });
  });

  it('prompt longer than the context, streaming → HTTP 400 (not a 200 stream)', async () => {
    const res = await post(small, CHAT, greedyChat(LONG_PROMPT, { max_tokens: 4, stream: true }));
    assertOpenAIError(res, 400, { code: 'context_length_exceeded' });
  });

  it('completion prompt longer than the context → 400, code context_length_exceeded', async () => {
    const res = await post(small, '/v1/completions', greedyCompletion(LONG_PROMPT, { max_tokens: 4 }));
    assertOpenAIError(res, 400, { code: 'context_length_exceeded' });
    await assertAlive(small);
  });

  it('a prompt that fits the small context is still served', async () => {
    const res = await post(small, CHAT, greedyChat('Hi', { max_tokens: 4 }));
    assert.equal(res.status, 200, describeRes(res));
  });

  it('hostile: non-UTF-8 bytes in a string → 400, server alive', async () => {
    const head = new TextEncoder().encode('{"model":"local","messages":[{"role":"user","content":"');
    const tail = new TextEncoder().encode('"}],"max_tokens":4}');
    const bad = new Uint8Array([0xff, 0xfe, 0xc3, 0x28, 0x80]);
    const body = new Uint8Array(head.length + bad.length + tail.length);
    body.set(head, 0);
    body.set(bad, head.length);
    body.set(tail, head.length + bad.length);
    assertOpenAIError(await post(server, CHAT, body), 400);
    await assertAlive(server);
  });

  it('hostile: 100k nested "[" → 400, server alive', async () => {
    assertOpenAIError(await post(server, CHAT, '['.repeat(100_000)), 400);
    await assertAlive(server);
  });

  it('hostile: 100k nested objects inside a valid request → 400, server alive', async () => {
    const deep = '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000);
    const body = `{"model":"local","messages":[{"role":"user","content":"Hi"}],"metadata":${deep}}`;
    assertOpenAIError(await post(server, CHAT, body), 400);
    await assertAlive(server);
  });

  it('hostile: an empty body → 400, server alive', async () => {
    assertOpenAIError(await request(server, 'POST', CHAT, { body: '' }), 400);
    await assertAlive(server);
  });

  it('after all of the above, both servers still serve completions', async () => {
    for (const s of [server, small]) {
      const res = await post(s, CHAT, greedyChat('Hi', { max_tokens: 3 }));
      assert.equal(res.status, 200, describeRes(res));
    }
  });
});

