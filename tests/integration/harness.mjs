// Shared helpers for the end-to-end tests: start the real switchboard binary on an ephemeral port
// with a temporary YAML config, talk to it over HTTP, parse its SSE streams, and always stop it.
// Only Node built-ins (node:test, node:assert, node:child_process, global fetch): Node 18+.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');

/* The binary under test: $SWITCHBOARD_BIN (relative to the repo root if not absolute). */
export const BIN = path.resolve(REPO_ROOT, process.env.SWITCHBOARD_BIN || 'build/debug/switchboard');

/* Test models: $SWITCHBOARD_MODELS, else ../shared/models beside the repo. */
export const MODELS_DIR = path.resolve(
  REPO_ROOT,
  process.env.SWITCHBOARD_MODELS || path.join('..', 'shared', 'models'),
);
export const CHAT_MODEL = path.join(MODELS_DIR, 'stories260K-chatml.gguf');

/* Hang guards, not performance thresholds: a debug (ASan) build on a busy 2-core machine is slow,
 * so these are generous and overridable. */
export const START_TIMEOUT_MS = Number(process.env.SWITCHBOARD_TEST_START_TIMEOUT_MS || 60_000);
export const EXIT_TIMEOUT_MS = Number(process.env.SWITCHBOARD_TEST_EXIT_TIMEOUT_MS || 30_000);
/* Per-test guard for node:test's `timeout` option. */
export const TEST_TIMEOUT_MS = Number(process.env.SWITCHBOARD_TEST_TIMEOUT_MS || 180_000);

/* How the binary is told to serve a config file. */
export function serveArgs(configPath) {
  return ['serve', '--config', configPath];
}

const LISTEN_RE = /switchboard: listening on http:\/\/([^\s:/]+|\[[^\]]+\]):(\d+)/;

/* ---------------------------------------------------------------------------------------------
 * Temporary folders and configs
 * ------------------------------------------------------------------------------------------- */

const liveDirs = new Set();
const liveProcs = new Set();

// If the test process itself dies, take the children with it.
process.on('exit', () => {
  for (const p of liveProcs) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
});

export function makeTempDir(prefix = 'sb-itest-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/* A YAML scalar. Strings are written as JSON strings, which are valid YAML double-quoted scalars. */
function yamlScalar(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(String(v));
}

/* Block-style YAML for plain objects, arrays and scalars (enough for switchboard's config). */
export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return `${pad}[]\n`;
    let out = '';
    for (const item of value) {
      if (item !== null && typeof item === 'object') {
        const body = toYaml(item, indent + 2);
        out += `${pad}- ${body.slice(indent + 2)}`;
      } else {
        out += `${pad}- ${yamlScalar(item)}\n`;
      }
    }
    return out;
  }
  if (value !== null && typeof value === 'object') {
    let out = '';
    for (const [k, v] of Object.entries(value)) {
      if (v !== null && typeof v === 'object' && (!Array.isArray(v) || v.length > 0)) {
        out += `${pad}${k}:\n${toYaml(v, indent + 2)}`;
      } else if (Array.isArray(v)) {
        out += `${pad}${k}: []\n`;
      } else {
        out += `${pad}${k}: ${yamlScalar(v)}\n`;
      }
    }
    return out;
  }
  return `${pad}${yamlScalar(value)}\n`;
}

/* The model entry tests use unless they say otherwise: the tiny chat model, one thread (the
 * machines are small and several test files may run at once). */
export function modelEntry(overrides = {}) {
  return {
    name: 'local',
    backend: 'local',
    path: CHAT_MODEL,
    context: 1024,
    parallel: 4,
    threads: 1,
    ...overrides,
  };
}

/* A model served by an OpenAI-compatible fake (tests/fakes/openai.mjs) as gpt-4o-mini, tried once:
 * a fault reaches the client as it happened. extra overrides or adds keys. */
export function cloudModel(fake, name = 'gpt', extra = {}) {
  return {
    name,
    backend: 'openai',
    base_url: `${fake.url}/v1`,
    api_key: 'sk-upstream-test',
    upstream_model: 'gpt-4o-mini',
    retries: { max: 0 },
    ...extra,
  };
}

/* A whole config: listen on 127.0.0.1, ephemeral port; one model unless `models` is given. */
export function makeConfig({ listen = {}, models, model = {}, extra = {} } = {}) {
  return {
    listen: { host: '127.0.0.1', port: 0, max_body_bytes: 8 * 1024 * 1024, ...listen },
    log_level: 'info',
    model_dirs: [MODELS_DIR],
    models: models ?? [modelEntry(model)],
    ...extra,
  };
}

export function writeConfig(dir, config, name = 'switchboard.yaml') {
  const file = path.join(dir, name);
  writeFileSync(file, typeof config === 'string' ? config : toYaml(config));
  return file;
}

/* ---------------------------------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------------------------------- */

function checkPrereqs() {
  assert.ok(existsSync(BIN), `switchboard binary not found at ${BIN} (set SWITCHBOARD_BIN or run make)`);
  assert.ok(existsSync(CHAT_MODEL), `test model not found at ${CHAT_MODEL} (set SWITCHBOARD_MODELS)`);
}

/* Spawns the binary with output captured. Returns { proc, output(), exited } where exited is a
 * promise of { code, signal } that never rejects. */
export function spawnBinary(args, { env = {}, cwd } = {}) {
  const proc = spawn(BIN, args, {
    cwd: cwd ?? REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveProcs.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (s) => {
    stdout += s;
  });
  proc.stderr.on('data', (s) => {
    stderr += s;
  });
  const exited = new Promise((resolve) => {
    proc.on('error', (err) => {
      stderr += `\n[spawn error: ${err.message}]`;
      liveProcs.delete(proc);
      resolve({ code: null, signal: null, error: err });
    });
    // 'close' (not 'exit'): the output pipes are drained by then.
    proc.on('close', (code, signal) => {
      liveProcs.delete(proc);
      resolve({ code, signal });
    });
  });
  return {
    proc,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
  };
}

/* Resolves with the exit status, or with null once ms have passed. */
export function waitForExit(child, ms = EXIT_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  return Promise.race([child.exited, timeout]).finally(() => clearTimeout(timer));
}

/* Runs the binary to completion (for startup failures and subcommands). Kills it if it is still
 * running after ms and fails. */
export async function runBinary(args, opts = {}) {
  checkPrereqs();
  const child = spawnBinary(args, opts);
  const st = await waitForExit(child, opts.timeoutMs ?? EXIT_TIMEOUT_MS);
  if (st === null) {
    child.proc.kill('SIGKILL');
    await child.exited;
    assert.fail(`switchboard ${args.join(' ')} did not exit\n${child.output()}`);
  }
  return { ...st, stdout: child.stdout(), stderr: child.stderr(), output: child.output() };
}

/* Starts a server from a config object (see makeConfig). Resolves once it has printed its
 * listening line. The returned object has url, port, configPath, dir, child, and stop(). */
export async function startServer(config = makeConfig(), { env } = {}) {
  checkPrereqs();
  const dir = makeTempDir();
  const configPath = writeConfig(dir, config);
  const child = spawnBinary(serveArgs(configPath), { env });

  let timer;
  let onData;
  const listening = new Promise((resolve, reject) => {
    onData = () => {
      const m = LISTEN_RE.exec(child.stderr());
      if (m) resolve(Number(m[2]));
    };
    child.proc.stderr.on('data', onData);
    timer = setTimeout(
      () => reject(new Error(`server did not report listening within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    child.exited.then((st) =>
      reject(new Error(`server exited before listening (code ${st.code}, signal ${st.signal})`)),
    );
  });

  let port;
  try {
    port = await listening;
  } catch (err) {
    child.proc.kill('SIGKILL');
    await child.exited;
    removeTempDir(dir);
    throw new Error(`${err.message}\nconfig:\n${toYaml(config)}\n${child.output()}`);
  } finally {
    clearTimeout(timer);
    child.proc.stderr.off('data', onData);
  }

  const server = {
    port,
    url: `http://127.0.0.1:${port}`,
    configPath,
    dir,
    child,
    config,
    output: child.output,
    /* SIGTERM, then SIGKILL if it has not exited within the bound. Returns the exit status of the
     * SIGTERM (null if it had to be killed). Safe to call twice. */
    async stop() {
      let st = null;
      if (child.proc.exitCode === null && child.proc.signalCode === null) {
        child.proc.kill('SIGTERM');
        st = await waitForExit(child);
        if (st === null) {
          child.proc.kill('SIGKILL');
          await child.exited;
        }
      } else {
        st = await child.exited;
      }
      removeTempDir(dir);
      return st;
    },
  };
  return server;
}

/* Stops a server and asserts a clean exit: status 0 and nothing reported by the sanitizers of a
 * debug build. Returns the exit status. */
export async function stopClean(server) {
  const st = await server.stop();
  assert.equal(st?.code, 0, `exit status ${JSON.stringify(st)}\n${server.output().slice(-3000)}`);
  assert.doesNotMatch(server.output(), /Sanitizer|runtime error/);
  return st;
}

/* A port nothing listens on: bound, read, closed. */
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/* Registers before/after hooks that run one server for the current file (or describe block).
 * Returns a holder whose .server is set once before() has run. */
export function useServer(configFn = () => makeConfig(), opts) {
  const holder = { server: null };
  before(async () => {
    holder.server = await startServer(configFn(), opts);
  });
  after(async () => {
    if (holder.server) await holder.server.stop();
  });
  return holder;
}

/* ---------------------------------------------------------------------------------------------
 * HTTP
 * ------------------------------------------------------------------------------------------- */

/* Sends a request; body may be an object (sent as JSON), a string or bytes. Reads the whole
 * response. Returns { status, headers, text, json } (json is undefined if the body is not JSON). */
export async function request(server, method, urlPath, { body, headers = {}, signal } = {}) {
  const init = { method, headers: { ...headers }, signal };
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Uint8Array) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
    }
    if (!Object.keys(init.headers).some((h) => h.toLowerCase() === 'content-type')) {
      init.headers['content-type'] = 'application/json';
    }
  }
  const res = await fetch(server.url + urlPath, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export function post(server, urlPath, body, opts = {}) {
  return request(server, 'POST', urlPath, { ...opts, body });
}

export function get(server, urlPath, opts = {}) {
  return request(server, 'GET', urlPath, opts);
}

/* ---------------------------------------------------------------------------------------------
 * Server-sent events
 * ------------------------------------------------------------------------------------------- */

/* Splits SSE text into events: blocks separated by a blank line; each event's data lines joined
 * with "\n". Comment lines (":") are ignored. Returns [{ event, data }] for events with data. */
export function parseSSE(text) {
  const events = [];
  for (const block of text.split(/\r\n\r\n|\n\n|\r\r/)) {
    const data = [];
    let event = 'message';
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
    }
    if (data.length > 0) events.push({ event, data: data.join('\n') });
  }
  return events;
}

/* Interprets an OpenAI stream: every data payload is JSON except a final "[DONE]". Returns
 * { chunks, done, doneLast, raw } — done: [DONE] was seen; doneLast: it was the last data line. */
export function openaiStream(text) {
  const events = parseSSE(text);
  const chunks = [];
  let done = false;
  let doneLast = false;
  events.forEach((ev, i) => {
    if (ev.data === '[DONE]') {
      done = true;
      doneLast = i === events.length - 1;
      return;
    }
    assert.ok(!done, `data after [DONE]: ${ev.data}`);
    let obj;
    try {
      obj = JSON.parse(ev.data);
    } catch {
      assert.fail(`SSE data is not JSON: ${JSON.stringify(ev.data)}`);
    }
    chunks.push(obj);
  });
  return { chunks, done, doneLast, raw: text };
}

/* Sends a streaming request and reads it to the end. Returns { status, headers, text, stream }
 * where stream is openaiStream(text) for a 200. */
export async function postStream(server, urlPath, body, opts = {}) {
  const res = await request(server, 'POST', urlPath, { ...opts, body });
  const out = { ...res };
  if (res.status === 200) out.stream = openaiStream(res.text);
  return out;
}

/* Reads an SSE response incrementally: yields each event's data (string) as it arrives. */
export async function* sseData(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    for (;;) {
      const m = /\r\n\r\n|\n\n|\r\r/.exec(buf);
      if (!m) break;
      const block = buf.slice(0, m.index + m[0].length);
      buf = buf.slice(m.index + m[0].length);
      for (const ev of parseSSE(block)) yield ev.data;
    }
  }
  buf += decoder.decode();
  for (const ev of parseSSE(buf)) yield ev.data;
}

/* The assistant text of a streamed chat completion (concatenated delta.content). */
export function chatStreamText(chunks) {
  return chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
}

/* The text of a streamed completion (concatenated choices[0].text). */
export function completionStreamText(chunks) {
  return chunks.map((c) => c.choices?.[0]?.text ?? '').join('');
}

/* The finish_reason a stream ended with (the last non-null one among its chunks). */
export function streamFinishReason(chunks) {
  let reason = null;
  for (const c of chunks) {
    const r = c.choices?.[0]?.finish_reason;
    if (r !== null && r !== undefined) reason = r;
  }
  return reason;
}

/* Parses a Prometheus text exposition, the way a client would, into [{ name, labels, value }];
 * fails on a line that is neither a comment nor a sample. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/* ---------------------------------------------------------------------------------------------
 * Assertions
 * ------------------------------------------------------------------------------------------- */

export function describeRes(res) {
  return `status ${res.status}, content-type ${res.headers.get('content-type')}, body: ${res.text.slice(0, 600)}`;
}

/* An OpenAI error: the status, a JSON body {"error":{"message","type","param","code"}}. Checks
 * param and code when given in expect. Returns the error object. */
export function assertOpenAIError(res, status, expect = {}) {
  assert.equal(res.status, status, `expected HTTP ${status}; got ${describeRes(res)}`);
  assert.match(res.headers.get('content-type') || '', /application\/json/, describeRes(res));
  assert.ok(res.json && typeof res.json === 'object', `error body is not JSON: ${describeRes(res)}`);
  const err = res.json.error;
  assert.ok(err && typeof err === 'object', `no "error" object: ${res.text}`);
  assert.equal(typeof err.message, 'string', `error.message: ${res.text}`);
  assert.ok(err.message.length > 0, `empty error.message: ${res.text}`);
  assert.equal(err.type, expect.type ?? 'invalid_request_error', `error.type: ${res.text}`);
  assert.ok('param' in err, `error.param missing: ${res.text}`);
  assert.ok('code' in err, `error.code missing: ${res.text}`);
  assert.ok(err.param === null || typeof err.param === 'string', `error.param: ${res.text}`);
  assert.ok(err.code === null || typeof err.code === 'string', `error.code: ${res.text}`);
  if ('param' in expect) assert.equal(err.param, expect.param, `error.param: ${res.text}`);
  if ('code' in expect) assert.equal(err.code, expect.code, `error.code: ${res.text}`);
  return err;
}

/* usage has non-negative integer counts and total = prompt + completion. */
export function assertUsage(usage, where = 'usage') {
  assert.ok(usage && typeof usage === 'object', `${where} missing`);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(usage[k]) && usage[k] >= 0, `${where}.${k} = ${usage[k]}`);
  }
  assert.ok(usage.prompt_tokens > 0, `${where}.prompt_tokens = 0`);
  assert.equal(
    usage.total_tokens,
    usage.prompt_tokens + usage.completion_tokens,
    `${where}: total_tokens != prompt_tokens + completion_tokens (${JSON.stringify(usage)})`,
  );
}

/* The three counts of a usage object, for comparing two of them. */
export function usageCounts(u) {
  return { prompt_tokens: u?.prompt_tokens, completion_tokens: u?.completion_tokens, total_tokens: u?.total_tokens };
}

/* Polls fn (async, returns truthy when done) up to `attempts` times, yielding to the event loop
 * between tries by awaiting a short timer. Returns the last value. */
export async function pollUntil(fn, { attempts = 200, intervalMs = 50 } = {}) {
  let v;
  for (let i = 0; i < attempts; i++) {
    v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return v;
}

/* A deterministic chat request: greedy, fixed seed. */
export function greedyChat(content, extra = {}) {
  return {
    model: 'local',
    messages: [{ role: 'user', content }],
    temperature: 0,
    seed: 42,
    max_tokens: 48,
    ...extra,
  };
}

export function greedyCompletion(prompt, extra = {}) {
  return { model: 'local', prompt, temperature: 0, seed: 42, max_tokens: 48, ...extra };
}
