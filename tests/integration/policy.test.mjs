// Routing by policy end to end: the real binary with a local model (stories260K-chatml) and a
// cloud model in front of a fake OpenAI server (tests/fakes/openai.mjs), whose request log is
// the proof of what left the machine: high sensitivity never reaches it (not even a connection,
// also when the local model cannot serve), medium data arrives pseudonymized and the answer is
// restored (placeholders split across SSE chunks, tool-call arguments), a deny rule is 403 in the
// caller's shape, an unknown sensitivity label 400, and every response says how it was routed.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT_MS, startServer, makeConfig, modelEntry, post, describeRes, openaiStream, chatStreamText } from './harness.mjs';
import { startOpenAIFake, chunk, DONE } from '../fakes/openai.mjs';

const CHAT = '/v1/chat/completions';
const EMAIL = 'jane.doe@example.com';
const CARD = '4111 1111 1111 1111';
const PII_TEXT = `Mail ${EMAIL} about card ${CARD}.`;

function cloud(fake, name) {
  return { name, backend: 'openai', base_url: `${fake.url}/v1`, api_key: 'sk-test-0123456789', retries: { max: 0 }, breaker: { failures: 0 } };
}

function policyConfig(fake, local = {}) {
  return makeConfig({
    models: [modelEntry({ name: 'local', ...local }), cloud(fake, 'cloud'), cloud(fake, 'blocked')],
    extra: {
      policy: {
        rules: [
          { id: 'no-blocked', when: { model: ['blocked'] }, action: { deny: 'this model is closed' } },
          // Cards are high by default (local only); this rule trusts the cloud with them masked.
          { id: 'cards-masked', when: { model: ['cloud'], pii: ['card'] }, action: { route: ['cloud'], pseudonymize: true } },
        ],
      },
    },
  });
}

function chatBody(model, content, extra = {}) {
  return { model, messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0, ...extra };
}

const textChunk = (content) => chunk({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'x', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
const finishChunk = (reason) => chunk({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'x', choices: [{ index: 0, delta: {}, finish_reason: reason }] });
const toolChunk = (tc) => chunk({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'x', choices: [{ index: 0, delta: { tool_calls: [tc] }, finish_reason: null }] });

describe('policy routing', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;

  before(async () => {
    fake = await startOpenAIFake();
    server = await startServer(policyConfig(fake));
  });
  after(async () => {
    if (server) await server.stop();
    if (fake) await fake.close();
  });

  it('high sensitivity to the cloud alias is served locally, and the cloud sees no connection', async () => {
    fake.reset();
    const before = fake.connections;
    const res = await post(server, CHAT, chatBody('cloud', 'Once upon a time'), { headers: { 'x-switchboard-sensitivity': 'high' } });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'local');
    assert.match(res.headers.get('x-switchboard-route'), /backend=local; rule=default; reason=".*high/);
    assert.equal(fake.requests.length, 0);
    assert.equal(fake.connections, before);
  });

  it('medium data goes to the cloud pseudonymized and comes back restored, whole', async () => {
    fake.reset();
    fake.push({ chunks: [textChunk('Sent to <EMA'), textChunk('IL_1> now.'), finishChunk('stop'), DONE], headers: { 'content-type': 'text/event-stream' } });
    const res = await post(server, CHAT, chatBody('cloud', PII_TEXT));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(fake.requests.length, 1);
    const sent = fake.requests[0].text;
    assert.ok(!sent.includes(EMAIL) && !sent.includes(CARD) && !sent.includes('4111'), sent);
    assert.ok(sent.includes('<EMAIL_1>'), sent);
    assert.equal(res.json.choices[0].message.content, `Sent to ${EMAIL} now.`);
    assert.match(res.headers.get('x-switchboard-route'), /backend=cloud; rule=cards-masked/);
  });

  it('a placeholder split across stream chunks is restored for a streaming client', async () => {
    fake.reset();
    fake.push({ chunks: [textChunk('Sent to <EMA'), textChunk('IL_1> now.'), finishChunk('stop'), DONE], headers: { 'content-type': 'text/event-stream' } });
    const res = await post(server, CHAT, chatBody('cloud', PII_TEXT, { stream: true }));
    assert.equal(res.status, 200, describeRes(res));
    assert.ok(!fake.requests[0].text.includes(EMAIL));
    const { chunks } = openaiStream(res.text);
    assert.equal(chatStreamText(chunks), `Sent to ${EMAIL} now.`);
    assert.ok(!res.text.includes('<EMAIL_1>'), res.text);
  });

  it('a placeholder inside streamed tool-call arguments is restored there', async () => {
    fake.reset();
    fake.push({
      chunks: [
        toolChunk({ index: 0, id: 'call_1', type: 'function', function: { name: 'send', arguments: '{"to":"<EMAI' } }),
        toolChunk({ index: 0, function: { arguments: 'L_1>"}' } }),
        finishChunk('tool_calls'),
        DONE,
      ],
      headers: { 'content-type': 'text/event-stream' },
    });
    const tools = [{ type: 'function', function: { name: 'send', parameters: { type: 'object', properties: { to: { type: 'string' } } } } }];
    const res = await post(server, CHAT, chatBody('cloud', PII_TEXT, { tools }));
    assert.equal(res.status, 200, describeRes(res));
    assert.ok(!fake.requests[0].text.includes(EMAIL));
    const call = res.json.choices[0].message.tool_calls[0];
    assert.deepEqual(JSON.parse(call.function.arguments), { to: EMAIL });
  });

  it('a deny rule is 403 with its id, in the OpenAI and the Anthropic shapes', async () => {
    fake.reset();
    const res = await post(server, CHAT, chatBody('blocked', 'hello'));
    assert.equal(res.status, 403, describeRes(res));
    assert.match(res.json.error.message, /no-blocked/);
    assert.match(res.json.error.message, /this model is closed/);
    assert.match(res.headers.get('x-switchboard-route'), /rule=no-blocked/);
    const a = await post(server, '/v1/messages', { model: 'blocked', max_tokens: 8, messages: [{ role: 'user', content: 'hello' }] });
    assert.equal(a.status, 403, describeRes(a));
    assert.equal(a.json.type, 'error');
    assert.equal(a.json.error.type, 'permission_error');
    assert.match(a.json.error.message, /no-blocked/);
    assert.equal(fake.requests.length, 0);
  });

  it('an unknown sensitivity label is 400', async () => {
    fake.reset();
    const res = await post(server, CHAT, chatBody('cloud', 'hello'), { headers: { 'x-switchboard-sensitivity': 'secret' } });
    assert.equal(res.status, 400, describeRes(res));
    assert.match(res.json.error.message, /sensitivity/);
    assert.equal(fake.requests.length, 0);
  });
});

describe('policy routing when the local model cannot serve', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;

  before(async () => {
    fake = await startOpenAIFake();
    server = await startServer(policyConfig(fake, { context: 16, parallel: 1 }));
  });
  after(async () => {
    if (server) await server.stop();
    if (fake) await fake.close();
  });

  it('high sensitivity fails with a clear error and the cloud sees no connection', async () => {
    const res = await post(server, CHAT, chatBody('cloud', 'Once upon a time there was a long story to tell about many things'), {
      headers: { 'x-switchboard-sensitivity': 'high' },
    });
    assert.ok(res.status >= 400, describeRes(res));
    assert.ok(res.json.error.message.length > 0);
    assert.equal(fake.requests.length, 0);
    assert.equal(fake.connections, 0);
  });
});

describe('the hybrid policy is the default without a policy section', { timeout: TEST_TIMEOUT_MS }, () => {
  let fake;
  let server;

  before(async () => {
    fake = await startOpenAIFake();
    server = await startServer(makeConfig({ models: [modelEntry({ name: 'local' }), cloud(fake, 'cloud')] }));
  });
  after(async () => {
    if (server) await server.stop();
    if (fake) await fake.close();
  });

  it('a cloud alias that fails falls back to the local model, and the route says so', async () => {
    fake.reset();
    fake.push({ status: 500, body: { error: { message: 'upstream broke', type: 'server_error' } } });
    const res = await post(server, CHAT, chatBody('cloud', 'Once upon a time'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(fake.requests.length, 1);
    assert.equal(res.headers.get('x-switchboard-backend'), 'local');
    assert.match(res.headers.get('x-switchboard-route'), /backend=local; rule=default; reason="default hybrid: cloud alias, sensitivity low -> cloud first, local fallback"/);
  });

  it('detected secrets keep a cloud-alias request on the machine', async () => {
    fake.reset();
    const before = fake.connections;
    const res = await post(server, CHAT, chatBody('cloud', 'My key is AKIAIOSFODNN7EXAMPLE, keep it safe.'));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.headers.get('x-switchboard-backend'), 'local');
    assert.match(res.headers.get('x-switchboard-route'), /rule=default; reason="default hybrid: sensitivity high \(detected: [a-z_]+\) -> local only"/);
    assert.equal(fake.connections, before);
  });
});
