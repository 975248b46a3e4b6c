// The load generator for bench/local_vs_llama_server.sh: drives one OpenAI-compatible server on
// loopback with streamed /v1/completions and records, per request, the time to first token, the
// generation rate and the token counts the server reports, pairing each measurement on one server
// with the same one on the other; then turns the records into a side-by-side table.
//
//   node bench/client.mjs run --server A=http://127.0.0.1:PORT[@PID] --server B=... --model M --out F.json
//   node bench/client.mjs report F.json [--note TEXT]...
//
// Every request has a deadline (REQ_TIMEOUT_MS) and every loop a fixed count, so a run is bounded.
// Only 127.0.0.1 is contacted. Sizes come from the environment (see CONF below).
import { readFileSync, writeFileSync } from 'node:fs';

const env = (k, d) => (process.env[k] === undefined || process.env[k] === '' ? d : Number(process.env[k]));
const CONF = {
  single_prompt_words: env('BENCH_SINGLE_WORDS', 495), // about 500 tokens with Llama-3's vocabulary
  single_reps: env('BENCH_SINGLE_REPS', 4), // pairs
  max_tokens: env('BENCH_MAX_TOKENS', 128),
  conc_streams: env('BENCH_CONC_STREAMS', 8),
  conc_prompt_words: env('BENCH_CONC_WORDS', 90), // about 100 tokens each
  conc_bursts: env('BENCH_CONC_BURSTS', 2), // pairs
  prefix_words: env('BENCH_PREFIX_WORDS', 975), // about 1,000 tokens
  prefix_suffix_words: env('BENCH_SUFFIX_WORDS', 20),
  prefix_reps: env('BENCH_PREFIX_REPS', 3), // warm requests on one prefix, back to back
  prefix_mixed_reps: env('BENCH_PREFIX_MIXED_REPS', 2), // rounds of two prefixes in turn
  prefix_max_tokens: env('BENCH_PREFIX_MAX_TOKENS', 16),
};
const REQ_TIMEOUT_MS = env('BENCH_REQ_TIMEOUT_MS', 120000);

// ---------------------------------------------------------------------------------------------
// Prompts: deterministic word salad, different from its first word on for every request that must
// not share a prefix with another (so neither server can reuse a cache where it should not).
// ---------------------------------------------------------------------------------------------
const WORDS = (
  'the a of and to in is was that for it with as on be at by this had not are but from or have an ' +
  'they which one you were all we her she there would their will when who him been has more if no ' +
  'out so said what up its about into than them can only other new some could time these two may ' +
  'then do first any my now such like our over man me even most made after also did many before ' +
  'must through back years where much your way well down should because each just those people how ' +
  'too little state good very make world still own see men work long get here between both life ' +
  'being under never day same another know while last might us great old year off come since against ' +
  'go came right used take three river garden window letter engine market silver winter morning ' +
  'harbor lantern forest station number picture question answer village mountain bridge'
).split(' ');

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

function words(n, seed) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(r() * WORDS.length)]);
  // A unique, non-word opener so two prompts differ from their first token.
  return `Note ${seed}: ` + out.join(' ');
}

// ---------------------------------------------------------------------------------------------
// One streamed request
// ---------------------------------------------------------------------------------------------
async function stream(url, model, prompt, maxTokens) {
  const body = {
    model,
    prompt,
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0,
    max_tokens: maxTokens,
    ignore_eos: true, // llama-server honours it; Switchboard ignores it (counts are checked below)
  };
  const rec = { t0: performance.now(), ttft_ms: null, t_last: null, chunks: 0, text_chunks: 0 };
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQ_TIMEOUT_MS),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const dec = new TextDecoder();
  let buf = '';
  let done = false;
  const onData = (data) => {
    if (data === '[DONE]') {
      done = true;
      return;
    }
    const j = JSON.parse(data);
    rec.chunks++;
    const text = j.choices?.[0]?.text ?? '';
    if (text.length > 0) {
      const now = performance.now();
      rec.text_chunks++;
      if (rec.ttft_ms === null) {
        rec.ttft_ms = now - rec.t0;
        rec.t_first = now;
      }
      rec.t_last = now;
    }
    if (j.choices?.[0]?.finish_reason) rec.finish_reason = j.choices[0].finish_reason;
    if (j.usage) rec.usage = j.usage;
    if (j.timings) rec.server_timings = j.timings;
  };
  for await (const part of res.body) {
    buf += dec.decode(part, { stream: true });
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(buf[i] === '\r' ? i + 4 : i + 2);
      const data = ev
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      if (data) onData(data);
    }
    if (done) break;
  }
  rec.t_end = performance.now();
  rec.completion_tokens = rec.usage?.completion_tokens ?? rec.text_chunks;
  rec.prompt_tokens = rec.usage?.prompt_tokens ?? null;
  const genMs = rec.t_last - rec.t_first;
  rec.gen_tps = rec.completion_tokens > 1 && genMs > 0 ? ((rec.completion_tokens - 1) * 1000) / genMs : null;
  return rec;
}

// ---------------------------------------------------------------------------------------------
// The measurement: every unit (one request, or one burst of concurrent requests) is run on one
// server and then on the other, the order swapped from one unit to the next (A B, B A, ...), so
// slow drift of a shared machine falls on both alike and each pair can be compared on its own.
// Only one server is ever busy; the idle one's CPU use is recorded to show it stays out of the way.
// ---------------------------------------------------------------------------------------------
function cpuMs(pid) {
  if (!pid) return null;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100; // utime + stime, at USER_HZ 100
  } catch {
    return null;
  }
}

async function burst(url, model, seeds) {
  const t0 = performance.now();
  const recs = await Promise.all(
    seeds.map((sd) => stream(url, model, words(CONF.conc_prompt_words, sd), CONF.max_tokens)),
  );
  const wall = performance.now() - t0;
  const total = recs.reduce((n, r) => n + r.completion_tokens, 0);
  return { wall_ms: wall, total_tokens: total, agg_tps: (total * 1000) / wall, requests: recs };
}

async function measure(servers, model) {
  const out = { conf: CONF, servers: servers.map((s) => s.label), units: [], idle_cpu_ms: {} };
  for (const s of servers) out.idle_cpu_ms[s.label] = 0;
  let flip = 0;
  // Runs fn on both servers, one after the other, and records the pair under `kind`.
  const pair = async (kind, fn) => {
    const order = flip++ % 2 ? [...servers].reverse() : servers;
    const unit = { kind };
    for (const s of order) {
      const other = servers.find((o) => o !== s);
      const c0 = cpuMs(other.pid);
      unit[s.label] = await fn(s);
      const c1 = cpuMs(other.pid);
      if (c0 !== null && c1 !== null) out.idle_cpu_ms[other.label] += c1 - c0;
    }
    out.units.push(unit);
    const desc = servers
      .map((s) => {
        const r = unit[s.label];
        return kind === 'conc' ? `${r.agg_tps.toFixed(1)} tok/s` : `ttft ${r.ttft_ms.toFixed(0)} ms` + (r.gen_tps && kind === 'single' ? ` ${r.gen_tps.toFixed(1)} tok/s` : '');
      })
      .join(' | ');
    console.log(`  ${kind.padEnd(11)} ${desc}   (load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`);
  };

  for (const s of servers) await stream(s.url, model, words(16, 999999), 8); // warm-up, not counted

  for (let i = 0; i < CONF.single_reps; i++) {
    await pair('single', (s) => stream(s.url, model, words(CONF.single_prompt_words, 1 + i), CONF.max_tokens));
  }
  for (let b = 0; b < CONF.conc_bursts; b++) {
    const seeds = Array.from({ length: CONF.conc_streams }, (_, i) => 1000 + 100 * b + i);
    await pair('conc', (s) => burst(s.url, model, seeds));
  }
  // Shared prefix: P0 cold, then warm back to back; P1 cold; then P0 and P1 in turn, as two
  // tenants with their own system prompts would arrive. Every prompt starts "Note N:", so any two
  // share a few tokens: a server that picks a slot by any common prefix at all lets P1 evict P0.
  const prefix = [0, 1].map((p) => words(CONF.prefix_words, 2000 + p));
  const suffix = (p, k) => prefix[p] + '\n\nQuestion ' + k + ': ' + words(CONF.prefix_suffix_words, 3000 + 10 * p + k).slice(6);
  const ask = (kind, p, k) => pair(kind, (s) => stream(s.url, model, suffix(p, k), CONF.prefix_max_tokens));
  await ask('prefix-cold', 0, 0);
  for (let k = 1; k <= CONF.prefix_reps; k++) await ask('prefix-warm', 0, k);
  await ask('prefix-cold', 1, 0);
  for (let k = 1; k <= CONF.prefix_mixed_reps; k++) {
    await ask('prefix-mixed', 0, CONF.prefix_reps + k);
    await ask('prefix-mixed', 1, k);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------
const median = (xs) => {
  const s = xs.filter((x) => x !== null && Number.isFinite(x)).sort((p, q) => p - q);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// Nearest-rank percentile: with few samples p99 is the largest, which is what we want to see.
const pct = (xs, p) => {
  const s = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

function report(file, notes) {
  const m = JSON.parse(readFileSync(file, 'utf8'));
  const [A, B] = m.servers;
  const units = (kind) => m.units.filter((u) => u.kind === kind);
  // Each row: how to get one value from a unit's result, and how to summarize a list of them.
  const rows = [
    ['single: gen tok/s', 'single', (r) => [r.gen_tps], median, true],
    ['single: TTFT ms', 'single', (r) => [r.ttft_ms], median, false],
    [`${m.conf.conc_streams} streams: aggregate tok/s`, 'conc', (r) => [r.agg_tps], median, true],
    [`${m.conf.conc_streams} streams: TTFT p50 ms`, 'conc', (r) => r.requests.map((q) => q.ttft_ms), (x) => pct(x, 50), false],
    [`${m.conf.conc_streams} streams: TTFT p99 ms`, 'conc', (r) => r.requests.map((q) => q.ttft_ms), (x) => pct(x, 99), false],
    ['prefix: cold TTFT ms', 'prefix-cold', (r) => [r.ttft_ms], median, false],
    ['prefix: warm TTFT ms, same prefix', 'prefix-warm', (r) => [r.ttft_ms], median, false],
    ['prefix: warm TTFT ms, 2 prefixes mixed', 'prefix-mixed', (r) => [r.ttft_ms], median, false],
  ];
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const pad = (s, n) => String(s).padEnd(n);
  const lpad = (s, n) => String(s).padStart(n);
  const lines = [];
  lines.push(`${pad('row', 38)}${lpad(A, 12)}${lpad(B, 14)}${lpad('ratio', 7)}${lpad('paired', 8)}  target   verdict`);
  const v = {};
  for (const [name, kind, get, sum, higher] of rows) {
    const us = units(kind);
    const a = sum(us.flatMap((u) => get(u[A])));
    const b = sum(us.flatMap((u) => get(u[B])));
    // The median over pairs of each pair's own ratio: robust to drift between pairs.
    const paired = median(us.map((u) => sum(get(u[A])) / sum(get(u[B]))));
    const r = a / b;
    v[kind + (higher ? '' : '-ttft')] = { a, b };
    if (kind === 'prefix-mixed') {
      const hit = (l) => us.filter((u) => (u[l].usage?.prompt_tokens_details?.cached_tokens ?? u[l].server_timings?.cache_n ?? 0) > u[l].prompt_tokens / 2).length;
      v.mixedHits = { a: hit(A), b: hit(B), n: us.length };
    }
    const ok = higher ? r >= 0.95 : r <= 1.05;
    lines.push(
      `${pad(name, 38)}${lpad(f(a), 12)}${lpad(f(b), 14)}${lpad(f(r, 2), 7)}${lpad(f(paired, 2), 8)}  ${pad(higher ? '>= 0.95' : '<= 1.05', 8)} ${ok ? 'ok' : 'MISS'}`,
    );
  }
  lines.push('');
  const all = (l) => m.units.flatMap((u) => (u.kind === 'conc' ? u[l].requests : [u[l]]));
  for (const l of [A, B]) {
    const cold = v['prefix-cold-ttft'];
    const warm = v['prefix-warm-ttft'];
    const ca = l === A ? cold.a : cold.b;
    const wa = l === A ? warm.a : warm.b;
    const prompts = ['single', 'conc', 'prefix-cold'].map((k) => {
      const u = units(k)[0][l];
      return (k === 'conc' ? u.requests[0] : u).prompt_tokens;
    });
    const mh = v.mixedHits;
    lines.push(
      `${l}: shared prefix cuts TTFT ${f(ca / wa, 1)}x (cold ${f(ca, 0)} ms -> warm ${f(wa, 0)} ms); ` +
        `prompt tokens single/stream/prefix ${prompts.join('/')}; completion tokens seen ` +
        `${[...new Set(all(l).map((r) => r.completion_tokens))].sort((x, y) => x - y).join(',')}; ` +
        `mixed-prefix requests that reused the cache ${l === A ? mh.a : mh.b}/${mh.n}; CPU while idle ${f(m.idle_cpu_ms[l], 0)} ms`,
    );
  }
  const st = units('single').map((u) => u[B].server_timings).filter(Boolean);
  if (st.length) {
    lines.push(
      `${B}'s own timings (single, median): ${f(median(st.map((t) => t.predicted_per_second)))} tok/s generation, ` +
        `${f(median(st.map((t) => t.prompt_per_second)))} tok/s prompt`,
    );
  }
  lines.push(
    `samples: ${units('single').length} single pairs, ${units('conc').length} bursts of ${m.conf.conc_streams}, ` +
      `${units('prefix-cold').length} cold + ${units('prefix-warm').length} warm + ${units('prefix-mixed').length} mixed prefix pairs; ratio = ${A} / ${B} of the ` +
      `medians, paired = median of per-pair ratios`,
  );
  for (const n of notes) lines.push(n);
  console.log(lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------
function args(argv) {
  const o = { files: [], notes: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--note') o.notes.push(argv[++i]);
    else if (k === '--server') (o.server ??= []).push(argv[++i]);
    else if (k.startsWith('--')) o[k.slice(2)] = argv[++i];
    else o.files.push(k);
  }
  return o;
}

const [cmd, ...rest] = process.argv.slice(2);
const a = args(rest);
if (cmd === 'run') {
  // --server LABEL=URL[@PID], twice.
  const servers = [].concat(a.server ?? []).map((x) => {
    const mm = /^([\w.-]+)=(http:\/\/127\.0\.0\.1:\d+)(?:@(\d+))?$/.exec(x);
    if (!mm) throw new Error(`--server wants LABEL=http://127.0.0.1:PORT[@PID], got ${x}`);
    return { label: mm[1], url: mm[2], pid: mm[3] ? Number(mm[3]) : null };
  });
  if (servers.length !== 2) throw new Error('give two --server');
  writeFileSync(a.out, JSON.stringify(await measure(servers, a.model ?? 'bench')));
} else if (cmd === 'report') {
  report(a.files[0], a.notes);
} else {
  console.error('usage: client.mjs run --server L=URL[@PID] --server L=URL[@PID] --model M --out F | report F [--note T]...');
  process.exit(2);
}
