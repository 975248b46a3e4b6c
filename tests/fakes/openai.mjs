// A fake OpenAI-compatible provider on top of server.mjs: replies to /chat/completions,
// /completions and /embeddings in OpenAI's wire format (JSON, or SSE chunks when the request says
// "stream": true), OpenAI error objects, and the raw pieces tests need to script faults.
//
// API
//   const fake = await startOpenAIFake()   a server.mjs fake whose fallback is reply() with defaults
//   reply(opts)        a reply (function of the request) that answers in the request's own shape:
//                      chat / text completion, streamed or not, usage chunk when
//                      stream_options.include_usage is set. opts:
//                        text ('Hello from the fake.'), pieces (the text's stream deltas; default:
//                        split after spaces), toolCalls [{ id, name, arguments, pieces }],
//                        finishReason ('stop', or 'tool_calls' with toolCalls), model (the
//                        request's), id, usage { prompt_tokens, completion_tokens, cached_tokens },
//                        embedding (vector for /embeddings; default [0.1, 0.2, 0.3])
//   errorReply(status, message, { type, code, param, retryAfter })   an OpenAI error response
//   chunk(obj)         one SSE event "data: JSON\n\n";  DONE is "data: [DONE]\n\n"
//   streamChunks(rec, opts)  the SSE events reply() would stream for rec (to cut, corrupt or hold)

import { startFakeServer } from './server.mjs';

export const DONE = 'data: [DONE]\n\n';
export const CREATED = 1_700_000_000;

export function chunk(obj) {
  return `data: ${JSON.stringify(obj)}\n\n`;
}

export function startOpenAIFake(opts = {}) {
  return startFakeServer({ fallback: reply(), ...opts });
}

/* Words with their following space, so the pieces concatenate back to the text. */
function splitPieces(text) {
  return text.match(/\S*\s*/g).filter((s) => s.length > 0);
}

function usageObject(u, chat) {
  const out = {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
  };
  if (chat) {
    out.prompt_tokens_details = { cached_tokens: u.cached_tokens ?? 0, audio_tokens: 0 };
    out.completion_tokens_details = {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    };
  }
  return out;
}

function defaults(rec, opts) {
  const text = opts.text ?? (opts.toolCalls ? '' : 'Hello from the fake.');
  return {
    text,
    pieces: opts.pieces ?? (text === '' ? [] : splitPieces(text)),
    toolCalls: opts.toolCalls ?? [],
    finishReason: opts.finishReason ?? (opts.toolCalls ? 'tool_calls' : 'stop'),
    model: opts.model ?? rec.json?.model ?? 'gpt-fake',
    id: opts.id ?? 'chatcmpl-fake0001',
    usage: { prompt_tokens: 11, completion_tokens: 7, cached_tokens: 0, ...(opts.usage ?? {}) },
  };
}

/* The SSE events of a streamed chat completion, in OpenAI's order: a role chunk, content deltas,
 * tool-call deltas (first with id, type and name; then argument pieces), the finish chunk, the
 * usage chunk (empty choices) when asked for, then [DONE]. */
export function streamChunks(rec, opts = {}) {
  const d = defaults(rec, opts);
  const withUsage = rec.json?.stream_options?.include_usage === true;
  const chat = rec.path.endsWith('/chat/completions');
  const base = chat
    ? { id: d.id, object: 'chat.completion.chunk', created: CREATED, model: d.model, system_fingerprint: 'fp_fake' }
    : { id: d.id.replace('chatcmpl', 'cmpl'), object: 'text_completion', created: CREATED, model: d.model, system_fingerprint: 'fp_fake' };
  const extra = withUsage ? { usage: null } : {};
  const out = [];
  if (!chat) {
    for (const p of d.pieces) {
      out.push(chunk({ ...base, choices: [{ text: p, index: 0, logprobs: null, finish_reason: null }], ...extra }));
    }
    out.push(chunk({ ...base, choices: [{ text: '', index: 0, logprobs: null, finish_reason: d.finishReason }], ...extra }));
    if (withUsage) out.push(chunk({ ...base, choices: [], usage: usageObject(d.usage, false) }));
    out.push(DONE);
    return out;
  }
  const choice = (delta, finish = null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });
  const first = { role: 'assistant', content: d.toolCalls.length > 0 && d.pieces.length === 0 ? null : '', refusal: null };
  out.push(chunk({ ...base, service_tier: 'default', choices: [choice(first)], ...extra }));
  for (const p of d.pieces) out.push(chunk({ ...base, service_tier: 'default', choices: [choice({ content: p })], ...extra }));
  d.toolCalls.forEach((tc, index) => {
    const head = { index, id: tc.id, type: 'function', function: { name: tc.name, arguments: '' } };
    out.push(chunk({ ...base, service_tier: 'default', choices: [choice({ tool_calls: [head] })], ...extra }));
    const pieces = tc.pieces ?? [tc.arguments];
    for (const a of pieces) {
      out.push(chunk({ ...base, service_tier: 'default', choices: [choice({ tool_calls: [{ index, function: { arguments: a } }] })], ...extra }));
    }
  });
  out.push(chunk({ ...base, service_tier: 'default', choices: [choice({}, d.finishReason)], ...extra }));
  if (withUsage) out.push(chunk({ ...base, service_tier: 'default', choices: [], usage: usageObject(d.usage, true) }));
  out.push(DONE);
  return out;
}

/* The JSON body of a non-streamed response. */
export function responseBody(rec, opts = {}) {
  const d = defaults(rec, opts);
  if (rec.path.endsWith('/embeddings')) {
    const inputs = Array.isArray(rec.json?.input) ? rec.json.input : [rec.json?.input];
    const vec = opts.embedding ?? [0.1, 0.2, 0.3];
    return {
      object: 'list',
      data: inputs.map((_, index) => ({ object: 'embedding', index, embedding: vec })),
      model: d.model,
      usage: { prompt_tokens: d.usage.prompt_tokens, total_tokens: d.usage.prompt_tokens },
    };
  }
  if (!rec.path.endsWith('/chat/completions')) {
    return {
      id: d.id.replace('chatcmpl', 'cmpl'),
      object: 'text_completion',
      created: CREATED,
      model: d.model,
      system_fingerprint: 'fp_fake',
      choices: [{ text: d.text, index: 0, logprobs: null, finish_reason: d.finishReason }],
      usage: usageObject(d.usage, false),
    };
  }
  const message = { role: 'assistant', content: d.text === '' && d.toolCalls.length > 0 ? null : d.text, refusal: null, annotations: [] };
  if (d.toolCalls.length > 0) {
    message.tool_calls = d.toolCalls.map((tc) => ({ id: tc.id, type: 'function', function: { name: tc.name, arguments: tc.arguments } }));
  }
  return {
    id: d.id,
    object: 'chat.completion',
    created: CREATED,
    model: d.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: d.finishReason }],
    usage: usageObject(d.usage, true),
    service_tier: 'default',
    system_fingerprint: 'fp_fake',
  };
}

export function reply(opts = {}) {
  return (rec) => {
    if (rec.json?.stream === true) {
      return { status: 200, headers: { 'content-type': 'text/event-stream; charset=utf-8' }, chunks: streamChunks(rec, opts) };
    }
    return { status: 200, body: responseBody(rec, opts) };
  };
}

export function errorReply(status, message, { type, code = null, param = null, retryAfter } = {}) {
  const t = type ?? (status === 429 ? 'rate_limit_exceeded' : status >= 500 ? 'server_error' : 'invalid_request_error');
  const r = { status, body: { error: { message, type: t, param, code } } };
  if (retryAfter !== undefined) r.retryAfter = retryAfter;
  return r;
}
