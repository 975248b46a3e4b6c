// A fake Ollama server on top of server.mjs: POST /api/chat in Ollama's native wire format, NDJSON
// lines when streaming (Ollama's default) or one JSON object with "stream": false, and Ollama's
// {"error": "..."} errors.
//
// API
//   const fake = await startOllamaFake()   a server.mjs fake whose fallback is reply() with defaults
//   reply(opts)      a reply (function of the request) in the request's own shape. opts: text,
//                    pieces (stream deltas; default: split after spaces), toolCalls
//                    [{ name, arguments (an object), id? }] (sent whole, in one line, as Ollama
//                    does), doneReason ('stop'), model (the request's), promptEvalCount (26),
//                    evalCount (9)
//   lines(rec, opts) the NDJSON lines reply() would stream for rec (to cut, corrupt or hold)
//   errorReply(status, message)   {"error": message} with that status
//   line(obj)        one NDJSON line

import { startFakeServer } from './server.mjs';

export const CREATED_AT = '2024-07-22T20:33:28.123648Z';

export function line(obj) {
  return `${JSON.stringify(obj)}\n`;
}

export function startOllamaFake(opts = {}) {
  return startFakeServer({ fallback: reply(), ...opts });
}

function splitPieces(text) {
  return text.match(/\S*\s*/g).filter((s) => s.length > 0);
}

function defaults(rec, opts) {
  const text = opts.text ?? (opts.toolCalls ? '' : 'Hello from the fake.');
  return {
    text,
    pieces: opts.pieces ?? (text === '' ? [] : splitPieces(text)),
    toolCalls: opts.toolCalls ?? [],
    doneReason: opts.doneReason ?? 'stop',
    model: opts.model ?? rec.json?.model ?? 'llama3.2',
    promptEvalCount: opts.promptEvalCount ?? 26,
    evalCount: opts.evalCount ?? 9,
  };
}

function wireToolCalls(d) {
  return d.toolCalls.map((tc, index) => {
    const fn = { name: tc.name, arguments: tc.arguments };
    if (tc.id === undefined) return { function: fn };
    return { id: tc.id, function: { index, ...fn } };
  });
}

function finalFields(d) {
  return {
    done_reason: d.doneReason,
    done: true,
    total_duration: 885095291,
    load_duration: 3753500,
    prompt_eval_count: d.promptEvalCount,
    prompt_eval_duration: 328493000,
    eval_count: d.evalCount,
    eval_duration: 552222000,
  };
}

export function lines(rec, opts = {}) {
  const d = defaults(rec, opts);
  const out = [];
  for (const p of d.pieces) {
    out.push(line({ model: d.model, created_at: CREATED_AT, message: { role: 'assistant', content: p }, done: false }));
  }
  if (d.toolCalls.length > 0) {
    out.push(line({ model: d.model, created_at: CREATED_AT, message: { role: 'assistant', content: '', tool_calls: wireToolCalls(d) }, done: false }));
  }
  out.push(line({ model: d.model, created_at: CREATED_AT, message: { role: 'assistant', content: '' }, ...finalFields(d) }));
  return out;
}

export function reply(opts = {}) {
  return (rec) => {
    if (rec.json?.stream === false) {
      const d = defaults(rec, opts);
      const message = { role: 'assistant', content: d.text };
      if (d.toolCalls.length > 0) message.tool_calls = wireToolCalls(d);
      return { status: 200, body: { model: d.model, created_at: CREATED_AT, message, ...finalFields(d) } };
    }
    return { status: 200, headers: { 'content-type': 'application/x-ndjson' }, chunks: lines(rec, opts) };
  };
}

export function errorReply(status, message, { retryAfter } = {}) {
  const r = { status, body: { error: message } };
  if (retryAfter !== undefined) r.retryAfter = retryAfter;
  return r;
}
