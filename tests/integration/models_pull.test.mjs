// `switchboard models pull | list | show | rm` against a loopback HTTP server that serves the test
// models from ../shared/models with Range support (and, on some paths, an interrupted first
// response, or no Range support at all), and `serve` refusing a model whose sha256 pin differs.
// Network: 127.0.0.1 only. Nothing here waits on the clock.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  MODELS_DIR,
  TEST_TIMEOUT_MS,
  makeConfig,
  makeTempDir,
  removeTempDir,
  runBinary,
  startServer,
  writeConfig,
  serveArgs,
} from './harness.mjs';

const MODEL = readFileSync(path.join(MODELS_DIR, 'stories260K.gguf'));
const MODEL_SHA = createHash('sha256').update(MODEL).digest('hex');
const OTHER_SHA = '0'.repeat(64);
const HTML = Buffer.from('<!DOCTYPE html><html><body>Sign in to download</body></html>\n');

/* The server: each path serves a body in a mode.
 *   normal    200, or 206 from a Range "bytes=N-" start (416 past the end)
 *   cut-once  like normal, but the first response stops after half the file and the connection
 *             closes (a dropped download)
 *   no-range  always 200 with the whole file, whatever Range says */
function startFileServer(routes) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const route = routes[url.pathname];
    requests.push({ path: url.pathname, range: req.headers.range ?? null });
    if (!route) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('no such file\n');
      return;
    }
    const body = route.body;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    let start = 0;
    if (m && route.mode !== 'no-range') {
      start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        'Content-Length': body.length - start,
        'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}`,
        'Accept-Ranges': 'bytes',
      });
    } else {
      res.writeHead(200, { 'Content-Length': body.length });
    }
    if (route.mode === 'cut-once' && !route.cut) {
      route.cut = true;
      const half = Math.floor(body.length / 2);
      // Half the bytes, then a clean close: the client sees fewer bytes than Content-Length.
      res.write(body.subarray(start, half), () => req.socket.end());
      return;
    }
    res.end(body.subarray(start));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        requests,
        close: () => new Promise((r) => server.close(r)),
      });
    });
  });
}

function manifest(dir) {
  const file = path.join(dir, 'manifest.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { models: [] };
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

describe('models pull', { timeout: TEST_TIMEOUT_MS }, () => {
  let srv;
  before(async () => {
    srv = await startFileServer({
      '/stories260K.gguf': { body: MODEL, mode: 'normal' },
      '/page.gguf': { body: HTML, mode: 'normal' },
      '/flaky/stories260K.gguf': { body: MODEL, mode: 'cut-once' },
      '/norange/stories260K.gguf': { body: MODEL, mode: 'no-range' },
    });
  });
  after(async () => {
    await srv.close();
  });

  test('with the right sha256: in place, in the manifest; list, show and rm see it', async () => {
    const dir = makeTempDir('sb-pull-');
    const source = `${srv.url}/stories260K.gguf`;
    const r = await runBinary(['models', 'pull', source, '--sha256', MODEL_SHA, '--dir', dir]);
    assert.equal(r.code, 0, r.output);
    const file = path.join(dir, 'stories260K.gguf');
    assert.equal(sha256(file), MODEL_SHA);
    assert.ok(!existsSync(`${file}.part`), 'the .part was renamed into place');
    assert.match(r.stdout, new RegExp(`pulled stories260K: .*sha256 ${MODEL_SHA}`));

    const entries = manifest(dir).models;
    assert.equal(entries.length, 1);
    assert.equal(entries[0].name, 'stories260K');
    assert.equal(entries[0].source, source);
    assert.equal(entries[0].size, MODEL.length);
    assert.equal(entries[0].sha256, MODEL_SHA);
    assert.match(entries[0].pulled_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const list = await runBinary(['models', 'list', '--dir', dir]);
    assert.equal(list.code, 0, list.output);
    assert.match(list.stdout, new RegExp(`stories260K .* ${MODEL_SHA}  ${source.replace(/\./g, '\\.')}`));

    const show = await runBinary(['models', 'show', 'stories260K', '--dir', dir]);
    assert.equal(show.code, 0, show.output);
    assert.match(show.stdout, /architecture\s+llama/);
    assert.match(show.stdout, /quantization\s+F32/);
    assert.match(show.stdout, /context\s+2048/);
    assert.match(show.stdout, /chat template\s+no/);
    assert.match(show.stdout, new RegExp(`sha256\\s+${MODEL_SHA}`));

    // Pulling over an existing model is refused; nothing is fetched.
    const again = await runBinary(['models', 'pull', source, '--dir', dir]);
    assert.equal(again.code, 2, again.output);
    assert.match(again.stderr, /already exists/);

    // rm takes names, never paths.
    const escape = await runBinary(['models', 'rm', '../stories260K', '--dir', dir]);
    assert.equal(escape.code, 2, escape.output);
    assert.match(escape.stderr, /refusing/);
    assert.ok(existsSync(file));

    const rm = await runBinary(['models', 'rm', 'stories260K', '--dir', dir]);
    assert.equal(rm.code, 0, rm.output);
    assert.ok(!existsSync(file));
    assert.deepEqual(manifest(dir).models, []);
    removeTempDir(dir);
  });

  test('a sha256 mismatch removes the file and names both hashes', async () => {
    const dir = makeTempDir('sb-pull-');
    const r = await runBinary([
      'models', 'pull', `${srv.url}/stories260K.gguf`, '--sha256', OTHER_SHA, '--dir', dir,
    ]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, new RegExp(`sha256 mismatch: expected ${OTHER_SHA} got ${MODEL_SHA}`));
    assert.match(r.stderr, /removed/);
    assert.ok(!existsSync(path.join(dir, 'stories260K.gguf')));
    assert.ok(!existsSync(path.join(dir, 'stories260K.gguf.part')));
    assert.deepEqual(manifest(dir).models, []);
    removeTempDir(dir);
  });

  test('a file that is not a GGUF is removed, and the message says so', async () => {
    const dir = makeTempDir('sb-pull-');
    const r = await runBinary(['models', 'pull', `${srv.url}/page.gguf`, '--dir', dir]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, /not a GGUF file: it starts with "<!DOCTYP"/);
    assert.ok(!existsSync(path.join(dir, 'page.gguf')));
    assert.ok(!existsSync(path.join(dir, 'page.gguf.part')));
    assert.deepEqual(manifest(dir).models, []);
    removeTempDir(dir);
  });

  test('an interrupted transfer is resumed by the next pull with a Range request', async () => {
    const dir = makeTempDir('sb-pull-');
    const source = `${srv.url}/flaky/stories260K.gguf`;
    const part = path.join(dir, 'stories260K.gguf.part');
    const first = await runBinary(['models', 'pull', source, '--sha256', MODEL_SHA, '--dir', dir]);
    assert.equal(first.code, 1, first.output);
    assert.match(first.stderr, /interrupted after \d+ of \d+ bytes/);
    assert.match(first.stderr, /run the same command again to resume/);
    const partial = statSync(part).size;
    assert.ok(partial > 0 && partial < MODEL.length, `partial size ${partial}`);

    const before = srv.requests.length;
    const second = await runBinary(['models', 'pull', source, '--sha256', MODEL_SHA, '--dir', dir]);
    assert.equal(second.code, 0, second.output);
    const resumed = srv.requests.slice(before).filter((q) => q.path === '/flaky/stories260K.gguf');
    assert.deepEqual(resumed, [{ path: '/flaky/stories260K.gguf', range: `bytes=${partial}-` }]);
    assert.equal(sha256(path.join(dir, 'stories260K.gguf')), MODEL_SHA);
    assert.ok(!existsSync(part));
    assert.equal(manifest(dir).models[0].sha256, MODEL_SHA);
    removeTempDir(dir);
  });

  test('a server that ignores Range: the pull starts over and still verifies', async () => {
    const dir = makeTempDir('sb-pull-');
    // A stale partial download whose bytes are wrong: it must not survive into the file.
    writeFileSync(path.join(dir, 'stories260K.gguf.part'), Buffer.alloc(1000, 0x55));
    const r = await runBinary([
      'models', 'pull', `${srv.url}/norange/stories260K.gguf`, '--sha256', MODEL_SHA, '--dir', dir,
    ]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.stderr, /does not resume downloads .* starting over/);
    assert.equal(sha256(path.join(dir, 'stories260K.gguf')), MODEL_SHA);
    removeTempDir(dir);
  });

  test('an HTTP error is reported and leaves nothing', async () => {
    const dir = makeTempDir('sb-pull-');
    const r = await runBinary(['models', 'pull', `${srv.url}/missing.gguf`, '--dir', dir]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, /answered HTTP 404/);
    assert.ok(!existsSync(path.join(dir, 'missing.gguf.part')));
    removeTempDir(dir);
  });

  test('bad arguments are refused before anything is fetched (exit 2)', async () => {
    const dir = makeTempDir('sb-pull-');
    const before = srv.requests.length;
    const cases = [
      [['models', 'pull', 'ftp://127.0.0.1/x.gguf', '--dir', dir], /unknown source/],
      [['models', 'pull', `${srv.url}/stories260K.gguf`, '--sha256', 'abc', '--dir', dir], /64 hex/],
      [['models', 'pull', `${srv.url}/download?id=1`, '--dir', dir], /--name NAME/],
      [['models', 'pull', `${srv.url}/stories260K.gguf`, '--name', '../x', '--dir', dir], /--name/],
    ];
    for (const [args, why] of cases) {
      const r = await runBinary(args);
      assert.equal(r.code, 2, r.output);
      assert.match(r.stderr, why);
    }
    assert.equal(srv.requests.length, before, 'nothing was requested');
    removeTempDir(dir);
  });
});

describe('sha256 pins in the configuration', { timeout: TEST_TIMEOUT_MS }, () => {
  test('serve exits 2 when the model file does not match its pin', async () => {
    const dir = makeTempDir('sb-pin-');
    const config = makeConfig({ model: { path: path.join(MODELS_DIR, 'stories260K.gguf'), sha256: OTHER_SHA } });
    const file = writeConfig(dir, config);
    const r = await runBinary(serveArgs(file));
    assert.equal(r.code, 2, r.output);
    assert.match(r.stderr, new RegExp(`does not match its sha256 pin: expected ${OTHER_SHA}, got ${MODEL_SHA}`));
    removeTempDir(dir);
  });

  test('serve starts when the pin matches (either case)', async () => {
    const server = await startServer(
      makeConfig({ model: { path: path.join(MODELS_DIR, 'stories260K.gguf'), sha256: MODEL_SHA.toUpperCase() } }),
    );
    const res = await fetch(`${server.url}/v1/models`);
    assert.equal(res.status, 200);
    await server.stop();
  });
});
