// POST /v1/chat/completions end to end against the real binary and the tiny chat model: response
// shapes, streaming equal to non-streaming under greedy decoding, usage against the tokenizer,
// token limits and stop sequences.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  useServer,
  post,
  postStream,
  greedyChat,
  assertUsage,
  usageCounts,
  chatStreamText,
  streamFinishReason,
  describeRes,
} from './harness.mjs';

const ctx = useServer();
const PROMPT = 'Once upon a time, there was a little girl named Lily.';

async function chat(body, opts) {
  const res = await post(ctx.server, '/v1/chat/completions', body, opts);
  assert.equal(res.status, 200, describeRes(res));
  return res.json;
}

async function chatStream(body, opts) {
  const res = await postStream(ctx.server, '/v1/chat/completions', { ...body, stream: true }, opts);
  assert.equal(res.status, 200, describeRes(res));
  assert.match(res.headers.get('content-type') || '', /^text\/event-stream/, describeRes(res));
  assert.ok(res.stream.done, `stream did not end with [DONE]:\n${res.text.slice(-600)}`);
  assert.ok(res.stream.doneLast, `[DONE] is not the last data line:\n${res.text.slice(-600)}`);
  return res.stream;
}

/* Picks a word from the middle of text as a stop sequence: its first occurrence must be well
 * inside the text, so that the cut output is neither empty nor the whole text. */
function pickStop(text) {
  const mid = text.length / 2;
  const words = [...text.matchAll(/[A-Za-z]{3,}/g)]
    .map((m) => m[0])
    .sort((a, b) => Math.abs(text.indexOf(a) - mid) - Math.abs(text.indexOf(b) - mid));
  for (const w of words) {
    const at = text.indexOf(w);
    if (at >= text.length / 4 && at <= (3 * text.length) / 4) return { stop: w, expected: text.slice(0, at) };
  }
  assert.fail(`no usable stop word in ${JSON.stringify(text)}`);
}

describe('chat completions', { timeout: TEST_TIMEOUT_MS }, () => {
  it('non-streaming: chat.completion with an assistant message and consistent usage', async () => {
    const r = await chat(greedyChat(PROMPT));
    assert.equal(r.object, 'chat.completion');
    assert.equal(typeof r.id, 'string');
    assert.ok(r.id.length > 0);
    assert.ok(Number.isInteger(r.created), `created: ${r.created}`);
    assert.equal(typeof r.model, 'string');
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(c.message.content.length > 0, 'empty content');
    assert.ok(['stop', 'length'].includes(c.finish_reason), `finish_reason: ${c.finish_reason}`);
    assertUsage(r.usage);
    assert.ok(r.usage.completion_tokens > 0);
    if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 48);
    else assert.ok(r.usage.completion_tokens < 48, JSON.stringify(r.usage));
  });

  it('streaming: chunks, role first, [DONE] last, text equal to the non-streaming text', async () => {
    const body = greedyChat(PROMPT);
    const whole = await chat(body);
    const { chunks } = await chatStream(body);
    assert.ok(chunks.length >= 2, `only ${chunks.length} chunks`);
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk', JSON.stringify(c));
      assert.equal(c.id, chunks[0].id, 'all chunks share one id');
      assert.equal(c.choices.length, 1, JSON.stringify(c));
      assert.equal(c.choices[0].index, 0);
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant', JSON.stringify(chunks[0]));
    assert.equal(chatStreamText(chunks), whole.choices[0].message.content);
    assert.equal(streamFinishReason(chunks), whole.choices[0].finish_reason);
    // The finish_reason is on the last chunk, and only there.
    for (const c of chunks.slice(0, -1)) assert.equal(c.choices[0].finish_reason ?? null, null, JSON.stringify(c));
  });

  it('streaming with "accept: application/json" (as the SDKs send) still streams SSE', async () => {
    const body = greedyChat(PROMPT, { max_tokens: 8 });
    const whole = await chat(body);
    const { chunks } = await chatStream(body, { headers: { accept: 'application/json' } });
    assert.equal(chatStreamText(chunks), whole.choices[0].message.content);
  });

  it('stream_options.include_usage: a final chunk with no choices and the same usage', async () => {
    const body = greedyChat(PROMPT);
    const whole = await chat(body);
    const { chunks } = await chatStream({ ...body, stream_options: { include_usage: true } });
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, [], `last chunk: ${JSON.stringify(last)}`);
    assertUsage(last.usage, 'stream usage');
    assert.deepEqual(usageCounts(last.usage), usageCounts(whole.usage));
    for (const c of chunks.slice(0, -1)) {
      assert.equal(c.choices.length, 1, JSON.stringify(c));
      assert.equal(c.usage ?? null, null, `usage before the final chunk: ${JSON.stringify(c)}`);
    }
    assert.equal(chatStreamText(chunks), whole.choices[0].message.content);
  });

  it('without include_usage no chunk carries usage', async () => {
    const { chunks } = await chatStream(greedyChat(PROMPT, { max_tokens: 8 }));
    for (const c of chunks) {
      assert.equal(c.choices.length, 1, JSON.stringify(c));
      assert.equal(c.usage ?? null, null, JSON.stringify(c));
    }
  });

  it('usage.prompt_tokens equals the tokenizer count of the templated prompt', async () => {
    const messages = [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: PROMPT },
    ];
    const tpl = await post(ctx.server, '/apply-template', { model: 'local', messages });
    assert.equal(tpl.status, 200, describeRes(tpl));
    assert.equal(typeof tpl.json.prompt, 'string', tpl.text);
    assert.ok(tpl.json.prompt.includes(PROMPT), `template output lacks the message: ${tpl.text}`);
    const tok = await post(ctx.server, '/tokenize', { model: 'local', content: tpl.json.prompt, add_special: true });
    assert.equal(tok.status, 200, describeRes(tok));
    assert.ok(Array.isArray(tok.json.tokens), tok.text);
    assert.ok(tok.json.tokens.every(Number.isInteger), tok.text);

    const r = await chat({ model: 'local', messages, temperature: 0, seed: 42, max_tokens: 4 });
    assertUsage(r.usage);
    assert.equal(r.usage.prompt_tokens, tok.json.tokens.length);
  });

  it('/tokenize: add_special adds the BOS token', async () => {
    const a = await post(ctx.server, '/tokenize', { model: 'local', content: PROMPT, add_special: true });
    const b = await post(ctx.server, '/tokenize', { model: 'local', content: PROMPT, add_special: false });
    assert.equal(a.status, 200, describeRes(a));
    assert.equal(b.status, 200, describeRes(b));
    assert.equal(a.json.tokens.length, b.json.tokens.length + 1);
    assert.equal(a.json.tokens[0], 1, 'stories260K BOS is token 1');
    assert.deepEqual(a.json.tokens.slice(1), b.json.tokens);
  });

  for (const field of ['max_tokens', 'max_completion_tokens']) {
    it(`${field}: finish_reason length with exactly that many completion tokens`, async () => {
      for (const n of [1, 7]) {
        const body = greedyChat(PROMPT);
        delete body.max_tokens;
        body[field] = n;
        const r = await chat(body);
        assert.equal(r.choices[0].finish_reason, 'length', JSON.stringify(r));
        assertUsage(r.usage);
        assert.equal(r.usage.completion_tokens, n, JSON.stringify(r.usage));
        assert.ok(r.choices[0].message.content.length > 0);
      }
    });
  }

  it('max_tokens in streaming: finish_reason length, usage completion_tokens exact', async () => {
    const { chunks } = await chatStream(greedyChat(PROMPT, { max_tokens: 5, stream_options: { include_usage: true } }));
    assert.equal(streamFinishReason(chunks), 'length');
    assert.equal(chunks[chunks.length - 1].usage.completion_tokens, 5);
  });

  it('a longer limit continues the same greedy text', async () => {
    const short = await chat(greedyChat(PROMPT, { max_tokens: 6 }));
    const long = await chat(greedyChat(PROMPT, { max_tokens: 24 }));
    assert.ok(
      long.choices[0].message.content.startsWith(short.choices[0].message.content),
      `${JSON.stringify(short.choices[0].message.content)} is not a prefix of ${JSON.stringify(long.choices[0].message.content)}`,
    );
  });

  describe('stop sequences', () => {
    let original;
    let pick;
    const base = () => greedyChat(PROMPT, { max_tokens: 64 });

    it('a word from the middle of a greedy output, as a string: output cut before it', async () => {
      original = (await chat(base())).choices[0].message.content;
      pick = pickStop(original);
      const r = await chat({ ...base(), stop: pick.stop });
      assert.equal(r.choices[0].message.content, pick.expected, `stop ${JSON.stringify(pick.stop)} in ${JSON.stringify(original)}`);
      assert.equal(r.choices[0].finish_reason, 'stop');
      assertUsage(r.usage);
    });

    it('the same word in a list (with one that never occurs)', async () => {
      assert.ok(pick, 'depends on the previous test');
      const r = await chat({ ...base(), stop: ['\u00a7never-there\u00a7', pick.stop] });
      assert.equal(r.choices[0].message.content, pick.expected);
      assert.equal(r.choices[0].finish_reason, 'stop');
    });

    it('streaming: the deltas stop before the word too (no partial match leaks)', async () => {
      assert.ok(pick, 'depends on the first stop test');
      const { chunks } = await chatStream({ ...base(), stop: [pick.stop] });
      assert.equal(chatStreamText(chunks), pick.expected);
      assert.equal(streamFinishReason(chunks), 'stop');
    });

    it('a stop sequence that never occurs changes nothing', async () => {
      assert.ok(original !== undefined, 'depends on the first stop test');
      const r = await chat({ ...base(), stop: '\u00a7never-there\u00a7' });
      assert.equal(r.choices[0].message.content, original);
    });
  });
});
