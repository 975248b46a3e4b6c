// POST /v1/completions end to end: the text_completion shape, streaming equal to non-streaming,
// echo, usage against the tokenizer, max_tokens and stop.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  useServer,
  post,
  postStream,
  greedyCompletion,
  assertUsage,
  usageCounts,
  completionStreamText,
  streamFinishReason,
  describeRes,
} from './harness.mjs';

const ctx = useServer();
const PROMPT = 'Once upon a time, there was a little boy named Tom. He';

async function complete(body) {
  const res = await post(ctx.server, '/v1/completions', body);
  assert.equal(res.status, 200, describeRes(res));
  return res.json;
}

async function completeStream(body) {
  const res = await postStream(ctx.server, '/v1/completions', { ...body, stream: true });
  assert.equal(res.status, 200, describeRes(res));
  assert.match(res.headers.get('content-type') || '', /^text\/event-stream/, describeRes(res));
  assert.ok(res.stream.done && res.stream.doneLast, `stream did not end with [DONE]:\n${res.text.slice(-600)}`);
  return res.stream;
}

describe('completions', { timeout: TEST_TIMEOUT_MS }, () => {
  it('non-streaming: text_completion with text, finish_reason and usage', async () => {
    const r = await complete(greedyCompletion(PROMPT));
    assert.equal(r.object, 'text_completion');
    assert.equal(typeof r.id, 'string');
    assert.ok(Number.isInteger(r.created));
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(typeof c.text, 'string');
    assert.ok(c.text.length > 0, 'empty text');
    assert.ok(['stop', 'length'].includes(c.finish_reason), `finish_reason: ${c.finish_reason}`);
    assertUsage(r.usage);
  });

  it('usage.prompt_tokens equals /tokenize of the prompt (with special tokens)', async () => {
    const tok = await post(ctx.server, '/tokenize', { model: 'local', content: PROMPT, add_special: true });
    assert.equal(tok.status, 200, describeRes(tok));
    const r = await complete(greedyCompletion(PROMPT, { max_tokens: 3 }));
    assert.equal(r.usage.prompt_tokens, tok.json.tokens.length);
  });

  it('max_tokens: finish_reason length with exactly that many completion tokens', async () => {
    const r = await complete(greedyCompletion(PROMPT, { max_tokens: 9 }));
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 9);
  });

  it('streaming: text_completion chunks whose text equals the non-streaming text', async () => {
    const body = greedyCompletion(PROMPT);
    const whole = await complete(body);
    const { chunks } = await completeStream({ ...body, stream_options: { include_usage: true } });
    const usageChunk = chunks[chunks.length - 1];
    const textChunks = chunks.slice(0, -1);
    assert.ok(textChunks.length >= 1);
    for (const c of textChunks) {
      assert.equal(c.object, 'text_completion', JSON.stringify(c));
      assert.equal(c.choices.length, 1, JSON.stringify(c));
    }
    assert.equal(completionStreamText(textChunks), whole.choices[0].text);
    assert.equal(streamFinishReason(textChunks), whole.choices[0].finish_reason);
    assert.deepEqual(usageChunk.choices, [], JSON.stringify(usageChunk));
    assert.deepEqual(usageCounts(usageChunk.usage), usageCounts(whole.usage));
  });

  it('echo: the text is the prompt followed by the plain completion', async () => {
    const plain = await complete(greedyCompletion(PROMPT, { max_tokens: 16 }));
    const echoed = await complete(greedyCompletion(PROMPT, { max_tokens: 16, echo: true }));
    assert.equal(echoed.choices[0].text, PROMPT + plain.choices[0].text);
    assert.deepEqual(usageCounts(echoed.usage), usageCounts(plain.usage));
  });

  it('echo in streaming: the prompt comes first, then the same completion', async () => {
    const plain = await complete(greedyCompletion(PROMPT, { max_tokens: 16 }));
    const { chunks } = await completeStream(greedyCompletion(PROMPT, { max_tokens: 16, echo: true }));
    assert.equal(completionStreamText(chunks), PROMPT + plain.choices[0].text);
  });

  it('echo with a stop sequence found in the prompt: stop applies to the generated text only', async () => {
    // "little" is in PROMPT; the echoed prompt must not trigger the stop.
    const body = greedyCompletion(PROMPT, { max_tokens: 16, stop: ['little'] });
    const plain = await complete(body);
    const echoed = await complete({ ...body, echo: true });
    assert.equal(echoed.choices[0].text, PROMPT + plain.choices[0].text);
    assert.equal(echoed.choices[0].finish_reason, plain.choices[0].finish_reason);
  });

  it('stop: the text is cut before the stop sequence', async () => {
    const whole = (await complete(greedyCompletion(PROMPT, { max_tokens: 48 }))).choices[0].text;
    const words = [...whole.matchAll(/[A-Za-z]{3,}/g)].map((m) => m[0]);
    const stop = words.find((w) => whole.indexOf(w) >= whole.length / 4);
    assert.ok(stop, `no stop word in ${JSON.stringify(whole)}`);
    const r = await complete(greedyCompletion(PROMPT, { max_tokens: 48, stop: [stop] }));
    assert.equal(r.choices[0].text, whole.slice(0, whole.indexOf(stop)));
    assert.equal(r.choices[0].finish_reason, 'stop');
  });
});
