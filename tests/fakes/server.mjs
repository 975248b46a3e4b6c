// A scripted loopback HTTP server that fake providers (openai.mjs, ollama.mjs, anthropic.mjs, ...)
// are built on: it answers each request with the next scripted reply, records every request byte
// for byte, and injects faults. Node built-ins only.
//
// API
//   const fake = await startFakeServer({ fallback, tls })
//     tls                      { key, cert } (PEM): serve HTTPS with HTTP/2 negotiated by ALPN (and
//                              HTTP/1.1 for clients that do not offer h2), as the providers do
//     fake.url / fake.port     http://127.0.0.1:PORT, or https:// with tls (listens on 127.0.0.1,
//                              an ephemeral port)
//     fake.push(...replies)    queues replies; each request takes the next one (FIFO). With the
//                              queue empty, fallback(rec) answers, else a 599 "no scripted reply".
//     fake.requests            every request, in arrival order, as a record (below)
//     fake.last()              the latest record (undefined if none)
//     fake.connections         TCP connections accepted so far (connection reuse shows here)
//     fake.waitForRequests(n)  resolves once n requests have been recorded (event-driven)
//     fake.reset()             forgets queued replies and records (connections keeps counting)
//     await fake.close()       closes the listener and every open connection
//
//   A record: { seq, method, path, url, headers (lower-case names), rawHeaders, body (Buffer),
//               text (body as UTF-8), json (parsed body, or undefined), connection (its index),
//               httpVersion ('1.1' or '2.0') }
//
//   A reply is an object, or a function (rec) => object (or a promise of one), with:
//     status      HTTP status (default 200)
//     headers     extra response headers { name: value }
//     body        string | Buffer | object (sent as JSON): the whole body, with Content-Length
//     chunks      [string | Buffer | { data, delayMs, waitFor }]: written one by one (chunked
//                 encoding); delayMs waits before that piece, waitFor (a promise) holds it until
//                 the test resolves it (e.g. once the client has seen the first delta); data may
//                 be left out
//     retryAfter  number (seconds) or string (an HTTP date): sets Retry-After
//     headDelayMs waits this long before sending the status line (a slow first byte)
//     hold        'head': never send the status line; 'body': after the chunks, send nothing
//                 more (a stalled stream). Either lasts until the client gives up (disconnects).
//     reset       true: after the chunks (once written), reset the TCP connection (RST) instead
//                 of ending the response
//   Delays are for shaping faults only; tests synchronize on responses, never on time.

import http from 'node:http';
import http2 from 'node:http2';

export async function startFakeServer({ fallback, tls } = {}) {
  const queue = [];
  const requests = [];
  const waiters = [];
  const sockets = new Set();
  let connections = 0;

  const handler = (req, res) => {
    const parts = [];
    req.on('data', (b) => parts.push(b));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      const text = body.toString('utf8');
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const rec = {
        seq: requests.length,
        method: req.method,
        path: req.url.split('?')[0],
        url: req.url,
        headers: { ...req.headers },
        rawHeaders: [...req.rawHeaders],
        body,
        text,
        json,
        connection: req.socket.sbIndex,
        httpVersion: req.httpVersion,
      };
      // HTTP/2 carries pseudo-headers (":method", ":path") beside the ordinary ones.
      for (const h of Object.keys(rec.headers)) if (h.startsWith(':')) delete rec.headers[h];
      requests.push(rec);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (requests.length >= waiters[i].n) {
          waiters[i].resolve(requests);
          waiters.splice(i, 1);
        }
      }
      let reply = queue.shift();
      if (reply === undefined && fallback) reply = fallback;
      if (reply === undefined) {
        reply = { status: 599, body: { error: `fake: no scripted reply for ${req.method} ${req.url}` } };
      }
      Promise.resolve(typeof reply === 'function' ? reply(rec) : reply)
        .then((r) => send(req, res, r ?? {}))
        .catch((err) => {
          if (!res.headersSent) res.writeHead(599, { 'content-type': 'text/plain' });
          res.end(`fake: reply failed: ${err?.stack ?? err}`);
        });
    });
  };
  const server = tls
    ? http2.createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: true }, handler)
    : http.createServer({ keepAlive: true }, handler);
  server.keepAliveTimeout = 60_000;
  server.on(tls ? 'secureConnection' : 'connection', (sock) => {
    sock.sbIndex = connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = server.address().port;

  return {
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    get connections() {
      return connections;
    },
    push(...replies) {
      queue.push(...replies);
    },
    last() {
      return requests[requests.length - 1];
    },
    waitForRequests(n) {
      if (requests.length >= n) return Promise.resolve(requests);
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    reset() {
      queue.length = 0;
      requests.length = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/* Resolves after ms, or as soon as the client has gone away (so a held reply never outlives it). */
function pause(res, ms) {
  return new Promise((resolve) => {
    if (res.destroyed || res.socket?.destroyed) return resolve(false);
    const t = setTimeout(() => {
      res.off('close', onClose);
      resolve(true);
    }, ms);
    const onClose = () => {
      clearTimeout(t);
      resolve(false);
    };
    res.once('close', onClose);
  });
}

/* Resolves when the client disconnects. */
function untilClosed(res) {
  return new Promise((resolve) => {
    if (res.destroyed || res.socket?.destroyed) return resolve();
    res.once('close', resolve);
  });
}

async function send(req, res, r) {
  const headers = { ...(r.headers ?? {}) };
  if (r.retryAfter !== undefined) headers['retry-after'] = String(r.retryAfter);
  let body = r.body;
  if (body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string') {
    body = JSON.stringify(body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
  }

  if (r.hold === 'head') {
    await untilClosed(res);
    return;
  }
  if (r.headDelayMs && !(await pause(res, r.headDelayMs))) return;

  if (r.chunks === undefined) {
    const buf = Buffer.from(body ?? '');
    headers['content-length'] = String(buf.length);
    res.writeHead(r.status ?? 200, headers);
    res.end(buf);
    return;
  }

  res.writeHead(r.status ?? 200, headers);
  res.flushHeaders();
  for (const c of r.chunks) {
    const piece = typeof c === 'string' || Buffer.isBuffer(c) ? { data: c } : c;
    if (piece.delayMs && !(await pause(res, piece.delayMs))) return;
    if (piece.waitFor) await piece.waitFor;
    if (res.destroyed) return;
    if (piece.data !== undefined && piece.data.length > 0) {
      await new Promise((resolve) => res.write(piece.data, () => resolve()));
    }
  }
  if (r.hold === 'body') {
    await untilClosed(res);
    return;
  }
  if (r.reset) {
    // Every chunk has been handed to the kernel (the write callbacks ran), so on loopback the
    // client receives them before the reset.
    const s = res.socket;
    if (!s) return;
    if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
    else s.destroy();
    return;
  }
  res.end();
}
