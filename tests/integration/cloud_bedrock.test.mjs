// The bedrock backend end to end: the real binary in front of a fake Bedrock runtime
// (tests/fakes/bedrock.mjs) that verifies every SigV4 signature, driven through the OpenAI
// inbound API. Checks the signed request (path with the model id encoded, body, session token)
// and what the client got: text, tool calls complete and in order, usage with cached tokens,
// streamed usage equal to non-streamed usage, and the error paths (a wrong secret → 403, an
// exception frame mid-stream, HTTP 503).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  TEST_TIMEOUT_MS,
  startServer,
  makeConfig,
  post,
  postStream,
  sseData,
  chatStreamText,
  streamFinishReason,
  assertOpenAIError,
  assertUsage,
  describeRes,
} from './harness.mjs';
import { startBedrockFake, reply, errorReply } from '../fakes/bedrock.mjs';

const CREDS = {
  accessKeyId: 'AKIDFAKEBEDROCK01',
  secretAccessKey: 'fakeSecret/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'FwoGZXIvYXdzEFAKE//session+token=',
};
const REGION = 'eu-west-3';
const MODEL_ID = 'anthropic.claude-3-haiku-20240307-v1:0';
const once = { retries: { max: 0 }, breaker: { failures: 1000 } };

let fake;
let server;

function bedrockModel(name, overrides = {}) {
  return {
    name,
    backend: 'bedrock',
    base_url: fake.url,
    region: REGION,
    upstream_model: MODEL_ID,
    aws_access_key_id: CREDS.accessKeyId,
    aws_secret_access_key: CREDS.secretAccessKey,
    aws_session_token: CREDS.sessionToken,
    ...once,
    ...overrides,
  };
}

before(async () => {
  fake = await startBedrockFake({ credentials: CREDS, region: REGION });
  server = await startServer(
    makeConfig({
      models: [
        bedrockModel('claude-br'),
        bedrockModel('claude-br-badsecret', { aws_secret_access_key: 'not-the-secret' }),
      ],
    }),
  );
});

after(async () => {
  if (server) await server.stop();
  if (fake) await fake.close();
});

const USAGE = { inputTokens: 15, outputTokens: 7, cacheReadInputTokens: 300, cacheWriteInputTokens: 2 };

const TOOLS = [
  {
    type: 'function',
    function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];
const TOOL_CALLS = [
  { id: 'tooluse_AAA', name: 'get_weather', input: { city: 'Paris', days: [1, 2] } },
  { id: 'tooluse_BBB', name: 'get_time', input: { tz: 'Europe/Paris' } },
];

function chatBody(extra = {}) {
  return {
    model: 'claude-br',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Say hello.' },
    ],
    ...extra,
  };
}

async function chat(body) {
  const res = await post(server, '/v1/chat/completions', body);
  assert.equal(res.status, 200, describeRes(res));
  return res.json;
}

async function chatStream(body) {
  const res = await postStream(server, '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
  assert.equal(res.status, 200, describeRes(res));
  assert.ok(res.stream.done && res.stream.doneLast, `no final [DONE]:\n${res.text.slice(-600)}`);
  return res.stream;
}

function assembleToolCalls(chunks) {
  const calls = [];
  for (const c of chunks) {
    for (const tc of c.choices?.[0]?.delta?.tool_calls ?? []) {
      if (calls[tc.index] === undefined) {
        assert.equal(tc.index, calls.length, `tool call ${tc.index} introduced out of order`);
        assert.ok(tc.id && tc.function?.name, `first delta of call ${tc.index} lacks id or name`);
        calls[tc.index] = { id: tc.id, name: tc.function.name, arguments: '' };
      }
      calls[tc.index].arguments += tc.function?.arguments ?? '';
    }
  }
  return calls;
}

describe('bedrock backend', { timeout: TEST_TIMEOUT_MS }, () => {
  it('chat: a correctly signed ConverseStream request and the reply with cached usage', async () => {
    fake.reset();
    fake.signatures.length = 0;
    fake.push(reply({ text: 'Bonjour from Bedrock.', usage: USAGE }));
    const r = await chat(chatBody({ max_tokens: 100, temperature: 0.2, stop: ['END'] }));
    assert.equal(r.choices[0].message.content, 'Bonjour from Bedrock.');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assertUsage(r.usage);
    assert.equal(r.usage.prompt_tokens, 15 + 300 + 2, 'input + cache reads + cache writes');
    assert.equal(r.usage.completion_tokens, 7);
    assert.equal(r.usage.prompt_tokens_details?.cached_tokens, 300);

    assert.deepEqual(fake.signatures.map((s) => s.ok), [true], 'the fake verified the signature');
    const rec = fake.last();
    assert.equal(rec.path, '/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream');
    assert.match(rec.headers.authorization, new RegExp(`^AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/\\d{8}/${REGION}/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$`));
    assert.equal(rec.headers['x-amz-security-token'], CREDS.sessionToken);
    assert.match(fake.signatures[0].canonicalRequest, /\n\/model\/anthropic\.claude-3-haiku-20240307-v1%253A0\/converse-stream\n/);
    assert.equal(rec.headers.accept, 'application/vnd.amazon.eventstream');
    assert.deepEqual(rec.json.system, [{ text: 'Be brief.' }]);
    assert.deepEqual(rec.json.messages, [{ role: 'user', content: [{ text: 'Say hello.' }] }]);
    assert.deepEqual(rec.json.inferenceConfig, { maxTokens: 100, temperature: 0.2, stopSequences: ['END'] });
    assert.equal(rec.json.toolConfig, undefined);
  });

  it('stream: the same text and the same usage as without streaming', async () => {
    fake.reset();
    const opts = { text: 'Alpha beta gamma delta.', usage: USAGE };
    fake.push(reply(opts), reply(opts));
    const whole = await chat(chatBody());
    const s = await chatStream(chatBody());
    assert.equal(chatStreamText(s.chunks), whole.choices[0].message.content);
    assert.equal(streamFinishReason(s.chunks), 'stop');
    const usageChunk = s.chunks.find((c) => c.usage);
    assert.ok(usageChunk, 'a usage chunk');
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(usageChunk.usage[k], whole.usage[k], k);
    assert.equal(usageChunk.usage.prompt_tokens_details?.cached_tokens, 300);
  });

  it('tools: toolUse / toolResult on the wire, calls back complete and in order', async () => {
    const history = {
      model: 'claude-br',
      tools: TOOLS,
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'tooluse_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon"}' } }] },
        { role: 'tool', tool_call_id: 'tooluse_0', content: '21C' },
        { role: 'user', content: 'And Paris, with the time?' },
      ],
    };
    fake.reset();
    const opts = { toolCalls: TOOL_CALLS, usage: USAGE };
    fake.push(reply(opts), reply(opts));

    const r = await chat(history);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const tcs = r.choices[0].message.tool_calls;
    assert.equal(tcs.length, 2);
    tcs.forEach((tc, i) => {
      assert.equal(tc.id, TOOL_CALLS[i].id);
      assert.equal(tc.function.name, TOOL_CALLS[i].name);
      assert.deepEqual(JSON.parse(tc.function.arguments), TOOL_CALLS[i].input);
    });
    const body = fake.requests[0].json;
    assert.equal(body.messages.length, 3);
    assert.deepEqual(body.messages[1], {
      role: 'assistant',
      content: [{ toolUse: { toolUseId: 'tooluse_0', name: 'get_weather', input: { city: 'Lyon' } } }],
    });
    assert.deepEqual(body.messages[2].content, [
      { toolResult: { toolUseId: 'tooluse_0', content: [{ text: '21C' }] } },
      { text: 'And Paris, with the time?' },
    ]);
    assert.deepEqual(body.toolConfig.tools[0], {
      toolSpec: { name: 'get_weather', description: 'Weather by city', inputSchema: { json: TOOLS[0].function.parameters } },
    });

    const s = await chatStream(history);
    const calls = assembleToolCalls(s.chunks);
    assert.equal(calls.length, 2);
    calls.forEach((tc, i) => {
      assert.equal(tc.id, TOOL_CALLS[i].id);
      assert.deepEqual(JSON.parse(tc.arguments), TOOL_CALLS[i].input, `streamed arguments of call ${i}`);
    });
    assert.equal(streamFinishReason(s.chunks), 'tool_calls');
    assert.ok(fake.signatures.slice(-2).every((x) => x.ok));
  });

  it('a wrong secret: the fake answers 403 and the client sees an upstream auth error', async () => {
    fake.reset();
    fake.signatures.length = 0;
    const res = await post(server, '/v1/chat/completions', chatBody({ model: 'claude-br-badsecret' }));
    const err = assertOpenAIError(res, 403);
    assert.match(err.message, /bedrock refused the credentials/);
    assert.match(err.message, /InvalidSignatureException/);
    assert.match(err.message, /signature we calculated does not match/);
    assert.deepEqual(fake.signatures.map((s) => s.ok), [false]);
    assert.doesNotMatch(res.text, /not-the-secret|fakeSecret/);
    assert.doesNotMatch(server.output(), /not-the-secret|fakeSecret|FwoGZXIvYXdzEFAKE/, 'secrets never logged');
  });

  it('HTTP 503 ServiceUnavailable: a 503 error in OpenAI shape', async () => {
    fake.reset();
    fake.push(errorReply(503, 'ServiceUnavailableException', 'Bedrock is unable to process your request.'));
    const res = await post(server, '/v1/chat/completions', chatBody());
    const err = assertOpenAIError(res, 503, { type: 'server_error' });
    assert.match(err.message, /unable to process/);
  });

  it('an exception frame mid-stream: an error chunk, no [DONE]', async () => {
    fake.reset();
    let clientSawText;
    const sawText = new Promise((resolve) => {
      clientSawText = resolve;
    });
    fake.push((rec) => {
      const r = reply({ text: 'Partial answer here', exceptionAfter: { frames: 2, type: 'throttlingException', message: 'Too many tokens, please wait.' } })(rec);
      const chunks = r.chunks.map((c) => ({ data: c }));
      chunks[chunks.length - 1].waitFor = sawText;
      return { ...r, chunks };
    });
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chatBody(), stream: true }),
    });
    assert.equal(res.status, 200);
    const events = [];
    for await (const data of sseData(res)) {
      events.push(data);
      if (data !== '[DONE]' && JSON.parse(data).choices?.[0]?.delta?.content) clientSawText();
    }
    assert.ok(!events.includes('[DONE]'), `[DONE] after an upstream failure: ${events.join('\n')}`);
    const last = JSON.parse(events[events.length - 1]);
    assert.ok(last.error, `the stream ends with an error chunk: ${events.join('\n')}`);
    assert.match(last.error.message, /throttlingException/);
  });

  it('a corrupted frame is an error, not a short success', async () => {
    fake.reset();
    fake.push((rec) => {
      const r = reply({ text: 'Will be corrupted' })(rec);
      const chunks = r.chunks.map((c) => Buffer.from(c));
      const victim = chunks[chunks.length - 2]; // messageStop
      victim[victim.length - 1] ^= 0xff; // its message CRC
      return { ...r, chunks };
    });
    const res = await post(server, '/v1/chat/completions', chatBody());
    assert.ok(res.status >= 500, describeRes(res));
    assert.match(res.json?.error?.message ?? '', /CRC/);
  });
  it('a client that goes away mid-stream: the call is cancelled, the server keeps serving', async () => {
    fake.reset();
    // Some text, then the provider holds the stream open until its client (the gateway) leaves.
    fake.push((rec) => {
      const r = reply({ text: 'One two three four five six seven' })(rec);
      return { ...r, chunks: r.chunks.slice(0, 4), hold: 'body' };
    });
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chatBody(), stream: true }),
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    let sawText = false;
    try {
      for await (const data of sseData(res)) {
        if (data !== '[DONE]' && JSON.parse(data).choices?.[0]?.delta?.content) {
          sawText = true;
          ac.abort();
        }
      }
    } catch (err) {
      assert.equal(err.name, 'AbortError', String(err));
    }
    assert.ok(sawText, 'text arrived before the client left');
    const r = await chat(chatBody());
    assert.equal(r.choices[0].finish_reason, 'stop');
  });

  it('the official openai SDK: streamed tool calls assemble into the complete calls', async () => {
    fake.reset();
    fake.push(reply({ toolCalls: TOOL_CALLS, text: 'Let me look.' }));
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
    const stream = client.chat.completions.stream({
      model: 'claude-br',
      messages: [{ role: 'user', content: 'Weather and time in Paris?' }],
      tools: TOOLS,
      stream_options: { include_usage: true },
    });
    const done = await stream.finalChatCompletion();
    const msg = done.choices[0].message;
    assert.equal(msg.content, 'Let me look.');
    assert.equal(done.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, TOOL_CALLS.length);
    msg.tool_calls.forEach((tc, i) => {
      assert.equal(tc.id, TOOL_CALLS[i].id);
      assert.equal(tc.function.name, TOOL_CALLS[i].name);
      assert.deepEqual(JSON.parse(tc.function.arguments), TOOL_CALLS[i].input);
    });
    assert.ok(done.usage && done.usage.prompt_tokens > 0, JSON.stringify(done.usage));
  });

  it('shuts down cleanly: exit status 0 (no leak or late callback under the sanitizers)', async () => {
    const st = await server.stop();
    const out = server.output();
    server = null;
    assert.ok(st !== null, `did not exit after SIGTERM\n${out}`);
    assert.equal(st.signal, null, out);
    assert.equal(st.code, 0, out);
  });
});
