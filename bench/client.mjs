// The load generator for bench/local_vs_llama_server.sh: drives one OpenAI-compatible server on
// loopback with streamed /v1/completions and records, per request, the time to first token, the
// generation rate and the token counts the server reports; then turns the records of both servers
// into a side-by-side table.
//
//   node bench/client.mjs run --url http://127.0.0.1:PORT --model NAME --label L --rep N --out F.json
//   node bench/client.mjs report [--note TEXT]... FILE.json...
//
// Every request has a deadline (REQ_TIMEOUT_MS) and every loop a fixed count, so a run is bounded.
// Only 127.0.0.1 is contacted. Sizes come from the environment (see CONF below).
import { readFileSync, writeFileSync } from 'node:fs';

const env = (k, d) => (process.env[k] === undefined || process.env[k] === '' ? d : Number(process.env[k]));
const CONF = {
  single_prompt_words: env('BENCH_SINGLE_WORDS', 440), // about 500 tokens with Llama-3's vocabulary
  single_reps: env('BENCH_SINGLE_REPS', 2), // per round
  max_tokens: env('BENCH_MAX_TOKENS', 128),
  conc_streams: env('BENCH_CONC_STREAMS', 8),
  conc_prompt_words: env('BENCH_CONC_WORDS', 90), // about 100 tokens each
  prefix_words: env('BENCH_PREFIX_WORDS', 880), // about 1,000 tokens
  prefix_suffix_words: env('BENCH_SUFFIX_WORDS', 20),
  prefix_reps: env('BENCH_PREFIX_REPS', 3), // warm requests per round
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
// One round against one server: single stream, N concurrent streams, shared prefix.
// ---------------------------------------------------------------------------------------------
async function runRound(a) {
  const { url, model, rep } = a;
  const base = 100000 * (rep + 1); // prompt seeds unique per round
  const out = { label: a.label, rep, conf: CONF, single: [], conc: null, prefix: null };

  await stream(url, model, words(16, base + 99999), 8); // warm-up: first-touch costs, not counted

  for (let i = 0; i < CONF.single_reps; i++) {
    out.single.push(await stream(url, model, words(CONF.single_prompt_words, base + 1 + i), CONF.max_tokens));
  }

  const t0 = performance.now();
  const recs = await Promise.all(
    Array.from({ length: CONF.conc_streams }, (_, i) =>
      stream(url, model, words(CONF.conc_prompt_words, base + 1000 + i), CONF.max_tokens),
    ),
  );
  const wall = performance.now() - t0;
  const total = recs.reduce((s, r) => s + r.completion_tokens, 0);
  out.conc = { wall_ms: wall, total_tokens: total, agg_tps: (total * 1000) / wall, requests: recs };

  const prefix = words(CONF.prefix_words, base + 2000);
  const suffix = (k) => '\n\nQuestion ' + k + ': ' + words(CONF.prefix_suffix_words, base + 3000 + k).slice(6);
  const cold = await stream(url, model, prefix + suffix(0), CONF.prefix_max_tokens);
  const warm = [];
  for (let k = 1; k <= CONF.prefix_reps; k++) {
    warm.push(await stream(url, model, prefix + suffix(k), CONF.prefix_max_tokens));
  }
  out.prefix = { cold, warm };
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

function report(files, notes) {
  const rounds = files.map((f) => JSON.parse(readFileSync(f, 'utf8')));
  const labels = [...new Set(rounds.map((r) => r.label))];
  const by = (l) => rounds.filter((r) => r.label === l);
  const stats = {};
  for (const l of labels) {
    const rs = by(l);
    const single = rs.flatMap((r) => r.single);
    const conc = rs.map((r) => r.conc);
    const concReqs = conc.flatMap((c) => c.requests);
    const cold = rs.map((r) => r.prefix.cold);
    const warm = rs.flatMap((r) => r.prefix.warm);
    const all = [...single, ...concReqs, ...cold, ...warm];
    stats[l] = {
      rounds: rs.length,
      single_n: single.length,
      single_tps: median(single.map((r) => r.gen_tps)),
      single_ttft: median(single.map((r) => r.ttft_ms)),
      single_prompt: median(single.map((r) => r.prompt_tokens)),
      conc_agg: median(conc.map((c) => c.agg_tps)),
      conc_p50: pct(concReqs.map((r) => r.ttft_ms), 50),
      conc_p99: pct(concReqs.map((r) => r.ttft_ms), 99),
      conc_prompt: median(concReqs.map((r) => r.prompt_tokens)),
      cold_ttft: median(cold.map((r) => r.ttft_ms)),
      warm_ttft: median(warm.map((r) => r.ttft_ms)),
      prefix_prompt: median(cold.map((r) => r.prompt_tokens)),
      completion: [...new Set(all.map((r) => r.completion_tokens))].sort((a, b) => a - b),
      single_server_tps: median(single.map((r) => r.server_timings?.predicted_per_second ?? null)),
      single_server_pp_ms: median(single.map((r) => r.server_timings?.prompt_ms ?? null)),
    };
  }
  const A = 'switchboard';
  const B = 'llama-server';
  const a = stats[A];
  const b = stats[B];
  if (!a || !b) throw new Error(`need rounds of both ${A} and ${B}, have ${labels.join(', ')}`);
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const rows = [
    // [name, key, higher is better?, target text]
    [`single: gen tok/s (~${a.single_prompt}-tok prompt)`, 'single_tps', true, '>= 0.95'],
    ['single: TTFT ms', 'single_ttft', false, '<= 1.05'],
    [`${CONF_OF(rounds).conc_streams} streams: aggregate tok/s`, 'conc_agg', true, '>= 0.95'],
    [`${CONF_OF(rounds).conc_streams} streams: TTFT p50 ms`, 'conc_p50', false, '<= 1.05'],
    [`${CONF_OF(rounds).conc_streams} streams: TTFT p99 ms`, 'conc_p99', false, '<= 1.05'],
    [`prefix: cold TTFT ms (~${a.prefix_prompt} tok)`, 'cold_ttft', false, '<= 1.05'],
    ['prefix: warm TTFT ms (shared prefix)', 'warm_ttft', false, '<= 1.05'],
  ];
  const lines = [];
  const pad = (s, n) => String(s).padEnd(n);
  const lpad = (s, n) => String(s).padStart(n);
  lines.push(`${pad('row', 40)}${lpad(A, 12)}${lpad(B, 14)}${lpad('ratio', 8)}  target   verdict`);
  for (const [name, key, higher, target] of rows) {
    const r = a[key] / b[key];
    const ok = higher ? r >= 0.95 : r <= 1.05;
    lines.push(
      `${pad(name, 40)}${lpad(f(a[key]), 12)}${lpad(f(b[key]), 14)}${lpad(f(r, 2), 8)}  ${pad(target, 8)} ${ok ? 'ok' : 'MISS'}`,
    );
  }
  lines.push('');
  for (const l of [A, B]) {
    const s = stats[l];
    lines.push(
      `${l}: prefix reuse speeds TTFT up ${f(s.cold_ttft / s.warm_ttft, 1)}x (cold ${f(s.cold_ttft, 0)} ms -> warm ${f(s.warm_ttft, 0)} ms); ` +
        `${s.rounds} rounds, ${s.single_n} single-stream samples; completion token counts seen: ${s.completion.join(',')}`,
    );
  }
  if (Number.isFinite(b.single_server_tps)) {
    lines.push(
      `llama-server's own timings (single stream, median): ${f(b.single_server_tps)} tok/s generation, ` +
        `prompt ${f(b.single_server_pp_ms, 0)} ms`,
    );
  }
  for (const n of notes) lines.push(n);
  console.log(lines.join('\n'));
}

function CONF_OF(rounds) {
  return rounds[0].conf;
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------
function args(argv) {
  const o = { files: [], notes: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--note') o.notes.push(argv[++i]);
    else if (k.startsWith('--')) o[k.slice(2)] = argv[++i];
    else o.files.push(k);
  }
  return o;
}

const [cmd, ...rest] = process.argv.slice(2);
const a = args(rest);
if (cmd === 'run') {
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(a.url ?? '')) throw new Error('--url must be http://127.0.0.1:PORT');
  const out = await runRound({ url: a.url, model: a.model, label: a.label, rep: Number(a.rep ?? 0) });
  writeFileSync(a.out, JSON.stringify(out));
  const s = out.single.map((r) => `${r.gen_tps?.toFixed(1)} tok/s ttft ${r.ttft_ms?.toFixed(0)} ms`).join('; ');
  console.log(
    `  ${a.label} round ${a.rep}: single [${s}]; ${out.conc.requests.length} streams ${out.conc.agg_tps.toFixed(1)} tok/s; ` +
      `prefix cold ${out.prefix.cold.ttft_ms.toFixed(0)} ms warm ${out.prefix.warm.map((r) => r.ttft_ms.toFixed(0)).join('/')} ms`,
  );
} else if (cmd === 'report') {
  report(a.files, a.notes);
} else {
  console.error('usage: client.mjs run --url URL --model NAME --label L --rep N --out FILE | report FILE...');
  process.exit(2);
}
