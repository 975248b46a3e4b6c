// A fake Anthropic Messages API on top of server.mjs: answers POST /v1/messages with server-sent
// events named and shaped as Anthropic sends them (message_start, content_block_start/delta/stop,
// ping, message_delta, message_stop), or a JSON Message when "stream" is not true; checks the
// x-api-key and anthropic-version headers as the real API does; and gives tests the raw pieces to
// script faults (an error event mid-stream, a cut stream, HTTP errors).
//
// API
//   const fake = await startAnthropicFake({ apiKey })   a server.mjs fake whose fallback is reply()
//   reply(opts)      a reply (function of the request). opts:
//                      apiKey: the key to require (401 authentication_error otherwise)
//                      text ('Hello from the fake Claude.'), pieces (its text_delta pieces; default:
//                      split after spaces), toolCalls [{ id, name, input (object), pieces (the
//                      partial_json pieces; default: the JSON cut in three) }], stopReason
//                      ('end_turn', or 'tool_use' with toolCalls), stopSequence, model (the
//                      request's), usage { input_tokens, output_tokens, cache_read_input_tokens,
//                      cache_creation_input_tokens }, errorAfter { events, type, message }: an
//                      SSE error event after that many content events, and nothing more
//   errorReply(status, type, message, { retryAfter })   Anthropic's error JSON with a status
//   sse(name, obj)   one event "event: NAME\ndata: JSON\n\n"
//   streamEvents(rec, opts)   the events reply() would stream for rec (to cut or corrupt)

import { startFakeServer } from './server.mjs';

export const ANTHROPIC_VERSION = '2023-06-01';

export function sse(name, obj) {
  return `event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`;
}

export function startAnthropicFake({ apiKey, ...opts } = {}) {
  return startFakeServer({ fallback: reply({ apiKey }), ...opts });
}

function splitPieces(text) {
  return text.match(/\S*\s*/g).filter((s) => s.length > 0);
}

function thirds(s) {
  const a = Math.floor(s.length / 3);
  const b = Math.floor((2 * s.length) / 3);
  return [s.slice(0, a), s.slice(a, b), s.slice(b)].filter((p) => p.length > 0);
}

function defaults(rec, opts) {
  const text = opts.text ?? (opts.toolCalls ? '' : 'Hello from the fake Claude.');
  return {
    text,
    pieces: opts.pieces ?? (text === '' ? [] : splitPieces(text)),
    toolCalls: (opts.toolCalls ?? []).map((tc) => ({
      ...tc,
      pieces: tc.pieces ?? thirds(JSON.stringify(tc.input ?? {})),
    })),
    stopReason: opts.stopReason ?? (opts.toolCalls ? 'tool_use' : 'end_turn'),
    stopSequence: opts.stopSequence ?? null,
    model: opts.model ?? rec.json?.model ?? 'claude-fake',
    id: opts.id ?? 'msg_fake0001',
    usage: {
      input_tokens: 21,
      output_tokens: 9,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      ...(opts.usage ?? {}),
    },
  };
}

/* The SSE events of one streamed message, in Anthropic's order. */
export function streamEvents(rec, opts = {}) {
  const d = defaults(rec, opts);
  const out = [];
  out.push(
    sse('message_start', {
      type: 'message_start',
      message: {
        id: d.id,
        type: 'message',
        role: 'assistant',
        content: [],
        model: d.model,
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: d.usage.input_tokens,
          cache_creation_input_tokens: d.usage.cache_creation_input_tokens,
          cache_read_input_tokens: d.usage.cache_read_input_tokens,
          output_tokens: 1,
        },
      },
    }),
  );
  const content = [];
  let index = 0;
  if (d.pieces.length > 0) {
    const i = index++;
    content.push(sse('content_block_start', { type: 'content_block_start', index: i, content_block: { type: 'text', text: '' } }));
    content.push(sse('ping', { type: 'ping' }));
    for (const p of d.pieces) {
      content.push(sse('content_block_delta', { type: 'content_block_delta', index: i, delta: { type: 'text_delta', text: p } }));
    }
    content.push(sse('content_block_stop', { type: 'content_block_stop', index: i }));
  }
  for (const tc of d.toolCalls) {
    const i = index++;
    content.push(
      sse('content_block_start', {
        type: 'content_block_start',
        index: i,
        content_block: { type: 'tool_use', id: tc.id, name: tc.name, input: {} },
      }),
    );
    content.push(sse('content_block_delta', { type: 'content_block_delta', index: i, delta: { type: 'input_json_delta', partial_json: '' } }));
    for (const p of tc.pieces) {
      content.push(sse('content_block_delta', { type: 'content_block_delta', index: i, delta: { type: 'input_json_delta', partial_json: p } }));
    }
    content.push(sse('content_block_stop', { type: 'content_block_stop', index: i }));
  }
  if (opts.errorAfter) {
    out.push(...content.slice(0, opts.errorAfter.events));
    out.push(
      sse('error', {
        type: 'error',
        error: { type: opts.errorAfter.type ?? 'overloaded_error', message: opts.errorAfter.message ?? 'Overloaded' },
      }),
    );
    return out;
  }
  out.push(...content);
  out.push(
    sse('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: d.stopReason, stop_sequence: d.stopSequence },
      usage: { output_tokens: d.usage.output_tokens },
    }),
  );
  out.push(sse('message_stop', { type: 'message_stop' }));
  return out;
}

/* The JSON Message of a non-streamed reply. */
export function messageBody(rec, opts = {}) {
  const d = defaults(rec, opts);
  const content = [];
  if (d.text !== '') content.push({ type: 'text', text: d.text });
  for (const tc of d.toolCalls) content.push({ type: 'tool_use', id: tc.id, name: tc.name, input: tc.input ?? {} });
  return {
    id: d.id,
    type: 'message',
    role: 'assistant',
    model: d.model,
    content,
    stop_reason: d.stopReason,
    stop_sequence: d.stopSequence,
    usage: d.usage,
  };
}

export function errorReply(status, type, message, { retryAfter } = {}) {
  const r = { status, body: { type: 'error', error: { type, message } } };
  if (retryAfter !== undefined) r.retryAfter = retryAfter;
  return r;
}

/* What the real API checks before anything else: the key, the version, a JSON body. */
function refuse(rec, opts) {
  if (opts.apiKey !== undefined && rec.headers['x-api-key'] !== opts.apiKey) {
    return errorReply(401, 'authentication_error', 'invalid x-api-key');
  }
  if (!rec.headers['anthropic-version']) {
    return errorReply(400, 'invalid_request_error', 'anthropic-version: header is required');
  }
  if (rec.method !== 'POST' || rec.path !== '/v1/messages') {
    return errorReply(404, 'not_found_error', `Not found: ${rec.method} ${rec.path}`);
  }
  if (!rec.json || typeof rec.json.max_tokens !== 'number') {
    return errorReply(400, 'invalid_request_error', 'max_tokens: Field required');
  }
  return null;
}

export function reply(opts = {}) {
  return (rec) => {
    const no = refuse(rec, opts);
    if (no) return no;
    if (rec.json.stream === true) {
      return {
        status: 200,
        headers: { 'content-type': 'text/event-stream; charset=utf-8', 'request-id': 'req_fake' },
        chunks: streamEvents(rec, opts),
      };
    }
    return { status: 200, body: messageBody(rec, opts) };
  };
}
