// A fake Amazon Bedrock runtime on top of server.mjs: answers POST /model/{id}/converse-stream
// with application/vnd.amazon.eventstream frames (prelude, headers, JSON payload, both CRC32s)
// carrying ConverseStream events, and POST /model/{id}/converse with the JSON Converse response.
// It verifies every request's AWS Signature Version 4 against the credentials it was given and
// answers like AWS when it is wrong: 403 with x-amzn-ErrorType InvalidSignatureException (or
// UnrecognizedClientException for an unknown key id).
//
// API
//   const fake = await startBedrockFake({ credentials, region })
//                    credentials { accessKeyId, secretAccessKey, sessionToken }; region
//                    ('us-east-1'); the fallback is reply()
//   reply(opts)      a reply (function of the request); opts: text, pieces, toolCalls [{ id, name,
//                    input (object), pieces }], stopReason, usage { inputTokens, outputTokens,
//                    cacheReadInputTokens, cacheWriteInputTokens }, exceptionAfter { frames,
//                    type, message }: an exception frame after that many content frames
//   errorReply(status, errorType, message, { retryAfter })   an AWS JSON error response
//   frame(headers, payload)   one event-stream frame (Buffer); headers { name: string value }
//   eventFrame(type, obj)     a ConverseStream event frame
//   streamFrames(rec, opts)   the frames reply() would stream (to cut or corrupt)
//   verifySigV4(rec, creds, region)   null when the signature is right, else the AWS error reply
//   fake.signatures  per request: { ok, canonicalRequest } as the fake computed them

import { createHash, createHmac } from 'node:crypto';
import { startFakeServer } from './server.mjs';

/* ---------------------------------------------------------------------------------------------
 * Event-stream framing
 * ------------------------------------------------------------------------------------------- */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/* One frame: string headers (type 7) and a payload. */
export function frame(headers, payload) {
  const hparts = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(String(value), 'utf8');
    const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
    h.writeUInt8(n.length, 0);
    n.copy(h, 1);
    h.writeUInt8(7, 1 + n.length);
    h.writeUInt16BE(v.length, 2 + n.length);
    v.copy(h, 4 + n.length);
    hparts.push(h);
  }
  const hbuf = Buffer.concat(hparts);
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const total = 12 + hbuf.length + body.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(hbuf.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  hbuf.copy(out, 12);
  body.copy(out, 12 + hbuf.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}

export function eventFrame(type, obj) {
  // Bedrock pads events with a "p" field of varying length so sizes do not leak content.
  return frame(
    { ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' },
    JSON.stringify({ ...obj, p: 'abcdefgh'.slice(0, (type.length % 7) + 1) }),
  );
}

export function exceptionFrame(type, message) {
  return frame(
    { ':exception-type': type, ':content-type': 'application/json', ':message-type': 'exception' },
    JSON.stringify({ message }),
  );
}

/* ---------------------------------------------------------------------------------------------
 * SigV4 verification, written from the specification (canonical request, string to sign,
 * derived key); the C side is checked against AWS's published vectors.
 * ------------------------------------------------------------------------------------------- */

const sha256hex = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

/* Each byte outside A-Z a-z 0-9 - _ . ~ and '/' as %XX: applied to the path as it came, which is
 * the second encoding for non-S3 services (a %3A on the wire signs as %253A). */
function canonicalUri(rawPath) {
  let out = '';
  for (const b of Buffer.from(rawPath || '/', 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~/]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function canonicalQuery(query) {
  if (!query) return '';
  return query
    .split('&')
    .filter((p) => p.length > 0)
    .map((p) => {
      const i = p.indexOf('=');
      return i < 0 ? [p, ''] : [p.slice(0, i), p.slice(i + 1)];
    })
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

function awsError(status, errorType, message) {
  return {
    status,
    headers: { 'x-amzn-errortype': `${errorType}:http://internal.amazon.com/coral/com.amazon.coral.service/` },
    body: { message },
  };
}

/* Returns { error, canonicalRequest }: error is null when the request is signed right. */
export function verifySigV4(rec, creds, region, service = 'bedrock') {
  const auth = rec.headers.authorization || '';
  const m = AUTH_RE.exec(auth);
  if (!m) return { error: awsError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token') };
  const [, keyId, date, scopeRegion, scopeService, signedHeaders, signature] = m;
  if (keyId !== creds.accessKeyId) {
    return { error: awsError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.') };
  }
  if (scopeRegion !== region || scopeService !== service) {
    return { error: awsError(403, 'InvalidSignatureException', `Credential should be scoped to a valid region and service (${region}/${service}).`) };
  }
  const amzDate = rec.headers['x-amz-date'] || '';
  if (!amzDate.startsWith(date)) {
    return { error: awsError(403, 'InvalidSignatureException', 'Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.') };
  }
  const names = signedHeaders.split(';');
  for (const need of ['host', 'x-amz-date']) {
    if (!names.includes(need)) return { error: awsError(403, 'InvalidSignatureException', `'${need}' must be a signed header.`) };
  }
  if (creds.sessionToken && (!names.includes('x-amz-security-token') || rec.headers['x-amz-security-token'] !== creds.sessionToken)) {
    return { error: awsError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.') };
  }
  const payloadHash = sha256hex(rec.body);
  const claimed = rec.headers['x-amz-content-sha256'];
  if (claimed !== undefined && claimed !== payloadHash) {
    return { error: awsError(400, 'ValidationException', 'The provided x-amz-content-sha256 header does not match what was computed.') };
  }
  const q = rec.url.indexOf('?');
  const canonicalHeaders = names
    .map((n) => `${n}:${String(rec.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonicalRequest = [
    rec.method,
    canonicalUri(rec.path),
    canonicalQuery(q < 0 ? '' : rec.url.slice(q + 1)),
    canonicalHeaders,
    signedHeaders,
    payloadHash,
  ].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, `${date}/${region}/${service}/aws4_request`, sha256hex(canonicalRequest)].join('\n');
  let key = hmac(`AWS4${creds.secretAccessKey}`, date);
  key = hmac(key, region);
  key = hmac(key, service);
  key = hmac(key, 'aws4_request');
  const expected = hmac(key, stringToSign).toString('hex');
  if (expected !== signature) {
    return {
      canonicalRequest,
      error: awsError(
        403,
        'InvalidSignatureException',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      ),
    };
  }
  return { error: null, canonicalRequest };
}

/* ---------------------------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------------------------- */

function splitPieces(text) {
  return text.match(/\S*\s*/g).filter((s) => s.length > 0);
}

function thirds(s) {
  const a = Math.floor(s.length / 3);
  const b = Math.floor((2 * s.length) / 3);
  return [s.slice(0, a), s.slice(a, b), s.slice(b)].filter((p) => p.length > 0);
}

function defaults(opts) {
  const text = opts.text ?? (opts.toolCalls ? '' : 'Hello from the fake Bedrock.');
  return {
    text,
    pieces: opts.pieces ?? (text === '' ? [] : splitPieces(text)),
    toolCalls: (opts.toolCalls ?? []).map((tc) => ({ ...tc, pieces: tc.pieces ?? thirds(JSON.stringify(tc.input ?? {})) })),
    stopReason: opts.stopReason ?? (opts.toolCalls ? 'tool_use' : 'end_turn'),
    usage: { inputTokens: 17, outputTokens: 8, cacheReadInputTokens: 0, cacheWriteInputTokens: 0, ...(opts.usage ?? {}) },
  };
}

export function streamFrames(rec, opts = {}) {
  const d = defaults(opts);
  const content = [];
  let index = 0;
  if (d.pieces.length > 0) {
    const i = index++;
    for (const p of d.pieces) content.push(eventFrame('contentBlockDelta', { contentBlockIndex: i, delta: { text: p } }));
    content.push(eventFrame('contentBlockStop', { contentBlockIndex: i }));
  }
  for (const tc of d.toolCalls) {
    const i = index++;
    content.push(eventFrame('contentBlockStart', { contentBlockIndex: i, start: { toolUse: { toolUseId: tc.id, name: tc.name } } }));
    for (const p of tc.pieces) content.push(eventFrame('contentBlockDelta', { contentBlockIndex: i, delta: { toolUse: { input: p } } }));
    content.push(eventFrame('contentBlockStop', { contentBlockIndex: i }));
  }
  const out = [eventFrame('messageStart', { role: 'assistant' })];
  if (opts.exceptionAfter) {
    out.push(...content.slice(0, opts.exceptionAfter.frames));
    out.push(exceptionFrame(opts.exceptionAfter.type ?? 'throttlingException', opts.exceptionAfter.message ?? 'Too many requests, please wait before trying again.'));
    return out;
  }
  out.push(...content);
  out.push(eventFrame('messageStop', { stopReason: d.stopReason }));
  const u = d.usage;
  out.push(
    eventFrame('metadata', {
      usage: { ...u, totalTokens: u.inputTokens + u.outputTokens + u.cacheReadInputTokens + u.cacheWriteInputTokens },
      metrics: { latencyMs: 42 },
    }),
  );
  return out;
}

export function converseBody(opts = {}) {
  const d = defaults(opts);
  const content = [];
  if (d.text !== '') content.push({ text: d.text });
  for (const tc of d.toolCalls) content.push({ toolUse: { toolUseId: tc.id, name: tc.name, input: tc.input ?? {} } });
  const u = d.usage;
  return {
    output: { message: { role: 'assistant', content } },
    stopReason: d.stopReason,
    usage: { ...u, totalTokens: u.inputTokens + u.outputTokens + u.cacheReadInputTokens + u.cacheWriteInputTokens },
    metrics: { latencyMs: 42 },
  };
}

export function errorReply(status, errorType, message, { retryAfter } = {}) {
  const r = awsError(status, errorType, message);
  if (retryAfter !== undefined) r.retryAfter = retryAfter;
  return r;
}

const PATH_RE = /^\/model\/([^/]+)\/(converse|converse-stream)$/;

/* opts.verify(rec) → error reply or null: set by startBedrockFake to check signatures. */
export function reply(opts = {}) {
  return (rec) => {
    const bad = opts.verify?.(rec);
    if (bad) return bad;
    const m = PATH_RE.exec(rec.path);
    if (rec.method !== 'POST' || !m) return awsError(404, 'UnknownOperationException', `Unknown operation ${rec.method} ${rec.path}`);
    if (!rec.json || !Array.isArray(rec.json.messages)) return awsError(400, 'ValidationException', 'Malformed input request: messages is required.');
    if (m[2] === 'converse') return { status: 200, body: converseBody(opts) };
    return {
      status: 200,
      headers: { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'fake-request-id' },
      chunks: streamFrames(rec, opts),
    };
  };
}

export async function startBedrockFake({ credentials, region = 'us-east-1', ...opts } = {}) {
  const signatures = [];
  const verify = (rec) => {
    const v = verifySigV4(rec, credentials, region);
    signatures.push({ ok: v.error === null, canonicalRequest: v.canonicalRequest });
    return v.error;
  };
  // Scripted replies (push) bypass reply(): check the signature for them too.
  const fake = await startFakeServer({ fallback: reply({ verify }), ...opts });
  const push = fake.push.bind(fake);
  fake.push = (...replies) =>
    push(
      ...replies.map((r) => (rec) => {
        const bad = verify(rec);
        if (bad) return bad;
        return typeof r === 'function' ? r(rec) : r;
      }),
    );
  fake.signatures = signatures;
  fake.verify = verify;
  return fake;
}
