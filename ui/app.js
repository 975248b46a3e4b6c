// Switchboard dashboard: polls the summary endpoint, fills the tiles and tables, and draws the
// sparklines by hand in SVG. No framework, nothing loaded from elsewhere; the page works offline.
// Elements carry data-* attributes with the raw numbers (data-value) next to the formatted text.
'use strict';

(function () {
  const SCRIPT = document.currentScript;
  // Relative to this script, so the page also works behind a proxy that adds a path prefix.
  const API = new URL('api/summary', SCRIPT ? SCRIPT.src : location.href);
  const HISTORY = 60; // points per sparkline
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ?refresh=MS sets the interval (tests use a short one); 2 s by default.
  function refreshMs() {
    const v = Number(new URLSearchParams(location.search).get('refresh'));
    return Number.isFinite(v) && v >= 100 && v <= 600000 ? v : 2000;
  }
  const INTERVAL = refreshMs();

  const state = {
    polls: 0,
    failures: 0,
    prev: null, // { startedMs, nowMs, requests, completion }
    history: { rps: [], tps: [], 'ttft-p95': [], 'latency-p95': [] },
  };

  // ---------------------------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------------------------
  const DASH = '\u2014';

  function fmtInt(n) {
    return n === null || n === undefined ? DASH : Number(n).toLocaleString('en-US');
  }

  function fmtRate(r) {
    if (r === null || !Number.isFinite(r)) return DASH;
    return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return DASH;
    if (s < 1) {
      const ms = s * 1000;
      return `${ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2)} ms`;
    }
    return `${s.toFixed(s >= 10 ? 1 : 2)} s`;
  }

  function fmtMs(ms) {
    return ms === null || ms === undefined ? DASH : fmtSeconds(ms / 1000);
  }

  // USD from integer micro-dollars: exact, six decimals below a dollar.
  function fmtUsd(micro) {
    if (micro === null || micro === undefined) return DASH;
    const usd = micro / 1e6;
    return `$${usd >= 1 ? usd.toFixed(2) : usd.toFixed(6)}`;
  }

  function fmtUptime(s) {
    const t = Math.floor(s);
    const d = Math.floor(t / 86400);
    const h = Math.floor((t % 86400) / 3600);
    const m = Math.floor((t % 3600) / 60);
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
    if (m > 0) return `${m}m ${String(t % 60).padStart(2, '0')}s`;
    return `${t}s`;
  }

  function fmtTime(ms) {
    return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
  }

  // ---------------------------------------------------------------------------------------------
  // DOM helpers (text only: nothing the server sends is parsed as HTML)
  // ---------------------------------------------------------------------------------------------
  function field(name) {
    return document.querySelector(`[data-field="${name}"]`);
  }

  function setTile(name, value, text) {
    const dd = document.querySelector(`[data-tile="${name}"] dd`);
    dd.dataset.value = value === null || value === undefined ? '' : String(value);
    dd.querySelector('.num').textContent = text;
  }

  // A table cell: text, with data-field / data-value for tests and a class.
  function td(text, opts = {}) {
    const c = document.createElement('td');
    c.textContent = text;
    if (opts.field) c.dataset.field = opts.field;
    if (opts.value !== undefined && opts.value !== null) c.dataset.value = String(opts.value);
    if (opts.cls) c.className = opts.cls;
    if (opts.title) c.title = opts.title;
    return c;
  }

  function emptyRow(cols, text) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const c = td(text);
    c.colSpan = cols;
    tr.append(c);
    return tr;
  }

  function fillBody(table, rows, cols, emptyText) {
    const body = document.querySelector(`[data-table="${table}"] tbody`);
    body.replaceChildren(...(rows.length ? rows : [emptyRow(cols, emptyText)]));
  }

  // A sparkline: the series scaled to the box, from 0 to its maximum.
  function drawSpark(name, values) {
    const svg = document.querySelector(`[data-spark="${name}"]`);
    if (!svg) return;
    const w = 120;
    const h = 30;
    const base = document.createElementNS(SVG_NS, 'line');
    base.setAttribute('x1', '0');
    base.setAttribute('x2', String(w));
    base.setAttribute('y1', String(h - 0.5));
    base.setAttribute('y2', String(h - 0.5));
    const nodes = [base];
    const pts = values.map((v) => (Number.isFinite(v) ? v : 0));
    if (pts.length >= 2) {
      const max = Math.max(...pts) || 1;
      const step = w / (HISTORY - 1);
      const x0 = w - step * (pts.length - 1);
      const line = document.createElementNS(SVG_NS, 'polyline');
      line.setAttribute(
        'points',
        pts.map((v, i) => `${(x0 + i * step).toFixed(1)},${(h - 1 - (v / max) * (h - 3)).toFixed(1)}`).join(' '),
      );
      nodes.push(line);
    }
    svg.replaceChildren(...nodes);
    svg.dataset.points = String(pts.length);
  }

  function pushHistory(name, v) {
    const hist = state.history[name];
    hist.push(v);
    if (hist.length > HISTORY) hist.shift();
    drawSpark(name, hist);
  }

  // ---------------------------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------------------------
  function statusClass(status) {
    if (status >= 500) return 'status-server';
    if (status >= 400) return 'status-client';
    return 'status-ok';
  }

  function costCell(row) {
    // Local backends are costed by the infra model in reports, not priced per token here.
    if (!row.priced && row.cost_microusd === 0) {
      return td('unpriced', { field: 'cost', value: 0, cls: 'n muted', title: 'not priced per token (local, or no price known)' });
    }
    return td(fmtUsd(row.cost_microusd), { field: 'cost', value: row.cost_microusd, cls: 'n' });
  }

  function backendName(name, configured) {
    if (name === '') return '(none reached)';
    return configured ? name : `${name} (not configured)`;
  }

  function backendRow(b) {
    const tr = document.createElement('tr');
    tr.dataset.backend = b.name;
    tr.append(
      td(backendName(b.name, b.configured), { field: 'name' }),
      td(fmtInt(b.requests), { field: 'requests', value: b.requests, cls: 'n' }),
      td(fmtInt(b.errors), { field: 'errors', value: b.errors, cls: 'n' }),
      td(fmtInt(b.tokens.prompt), { field: 'prompt-tokens', value: b.tokens.prompt, cls: 'n' }),
      td(fmtInt(b.tokens.cached), { field: 'cached-tokens', value: b.tokens.cached, cls: 'n' }),
      td(fmtInt(b.tokens.completion), { field: 'completion-tokens', value: b.tokens.completion, cls: 'n' }),
      costCell(b),
      td(fmtSeconds(b.ttft_seconds.p50), { field: 'ttft-p50', value: b.ttft_seconds.p50, cls: 'n' }),
      td(fmtSeconds(b.latency_seconds.p95), { field: 'latency-p95', value: b.latency_seconds.p95, cls: 'n' }),
      td(b.breaker ?? DASH, { field: 'breaker', value: b.breaker, cls: b.breaker ? `state-${b.breaker}` : 'muted' }),
      td(b.queue_depth === null ? DASH : fmtInt(b.queue_depth), { field: 'queue', value: b.queue_depth, cls: 'n' }),
      td(b.busy_slots === null ? DASH : fmtInt(b.busy_slots), { field: 'busy', value: b.busy_slots, cls: 'n' }),
    );
    return tr;
  }

  function modelRow(m) {
    const tr = document.createElement('tr');
    tr.dataset.model = m.name;
    const tokens = m.tokens.prompt + m.tokens.cached + m.tokens.completion;
    tr.append(
      td(m.name === '' ? '(no such model)' : m.name, { field: 'name' }),
      td(fmtInt(m.requests), { field: 'requests', value: m.requests, cls: 'n' }),
      td(fmtInt(m.status_classes['2xx']), { field: '2xx', value: m.status_classes['2xx'], cls: 'n' }),
      td(fmtInt(m.status_classes['4xx']), { field: '4xx', value: m.status_classes['4xx'], cls: 'n' }),
      td(fmtInt(m.status_classes['5xx']), { field: '5xx', value: m.status_classes['5xx'], cls: 'n' }),
      td(fmtInt(tokens), { field: 'tokens', value: tokens, cls: 'n' }),
      costCell(m),
    );
    return tr;
  }

  function decisionRow(d) {
    const tr = document.createElement('tr');
    tr.dataset.requestId = d.request_id;
    const status = d.error_class ? `${d.status} ${d.error_class}` : String(d.status);
    tr.append(
      td(fmtTime(d.time_ms), { field: 'time', value: d.time_ms }),
      td(d.request_id, { field: 'request-id', cls: 'id' }),
      td(d.api, { field: 'api' }),
      td(d.model, { field: 'model' }),
      td(d.backend ?? DASH, { field: 'backend', value: d.backend ?? '' }),
      td(d.rule ?? 'not routed', { field: 'rule', value: d.rule ?? '', cls: d.rule ? '' : 'muted' }),
      td(d.reason ?? 'the model\u2019s configured chain', { field: 'reason', cls: 'reason' }),
      td(d.sensitivity ?? DASH, { field: 'sensitivity', value: d.sensitivity ?? '' }),
      td(status, { field: 'status', value: d.status, cls: `n ${statusClass(d.status)}` }),
      td(fmtMs(d.latency_ms), { field: 'latency', value: d.latency_ms, cls: 'n' }),
    );
    return tr;
  }

  // Rates from this poll and the one before; null until there are two of the same server life.
  function rates(s) {
    const t = s.totals;
    const cur = { startedMs: s.started_ms, nowMs: s.now_ms, requests: t.requests, completion: t.tokens.completion };
    const prev = state.prev;
    state.prev = cur;
    if (!prev || prev.startedMs !== cur.startedMs || cur.nowMs <= prev.nowMs || cur.requests < prev.requests) {
      return { rps: null, tps: null };
    }
    const dt = (cur.nowMs - prev.nowMs) / 1000;
    return { rps: (cur.requests - prev.requests) / dt, tps: (cur.completion - prev.completion) / dt };
  }

  function render(s) {
    const t = s.totals;
    field('instance').textContent = s.listen ? `${s.instance ?? ''} ${s.listen}`.trim() : s.instance ?? '';
    field('version').textContent = `v${s.version}`;
    field('uptime').textContent = fmtUptime(s.uptime_s);
    const updated = field('updated');
    updated.textContent = fmtTime(s.now_ms);
    updated.dateTime = new Date(s.now_ms).toISOString();

    const r = rates(s);
    setTile('rps', r.rps, fmtRate(r.rps));
    setTile('tps', r.tps, fmtRate(r.tps));
    setTile('ttft-p50', t.ttft_seconds.p50, fmtSeconds(t.ttft_seconds.p50));
    setTile('ttft-p95', t.ttft_seconds.p95, fmtSeconds(t.ttft_seconds.p95));
    setTile('latency-p50', t.latency_seconds.p50, fmtSeconds(t.latency_seconds.p50));
    setTile('latency-p95', t.latency_seconds.p95, fmtSeconds(t.latency_seconds.p95));
    setTile('requests', t.requests, fmtInt(t.requests));
    setTile('errors', t.errors, fmtInt(t.errors));
    setTile('cost-today', t.cost_today_microusd, fmtUsd(t.cost_today_microusd));
    setTile('cost-total', t.cost_microusd, fmtUsd(t.cost_microusd));
    if (r.rps !== null) {
      pushHistory('rps', r.rps);
      pushHistory('tps', r.tps);
    }
    pushHistory('ttft-p95', t.ttft_seconds.p95);
    pushHistory('latency-p95', t.latency_seconds.p95);

    fillBody('backends', s.backends.map(backendRow), 12, 'No backend configured.');
    fillBody('models', s.models.map(modelRow), 7, 'No model configured.');
    const recent = s.recent.decisions;
    fillBody('recent', recent.map(decisionRow), 10, 'No request yet.');
    field('recent-count').textContent = String(recent.length);
    field('recent-total').textContent = fmtInt(s.recent.total);
  }

  // ---------------------------------------------------------------------------------------------
  // Polling
  // ---------------------------------------------------------------------------------------------
  function showError(message) {
    const banner = document.querySelector('[data-banner]');
    banner.textContent = `Cannot refresh from ${API.pathname}: ${message}. ` +
      `Showing the last data received; retrying every ${fmtRate(INTERVAL / 1000)} s.`;
    banner.hidden = false;
    document.body.dataset.state = 'error';
  }

  function clearError() {
    const banner = document.querySelector('[data-banner]');
    banner.hidden = true;
    banner.textContent = '';
    document.body.dataset.state = 'ok';
  }

  async function fetchSummary() {
    const res = await fetch(API, { cache: 'no-store', headers: { accept: 'application/json' } });
    const text = await res.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // reported below
    }
    if (!res.ok) {
      const msg = body && body.error && body.error.message ? body.error.message : res.statusText;
      throw new Error(`HTTP ${res.status}${msg ? ` (${msg})` : ''}`);
    }
    if (!body || typeof body !== 'object' || !body.totals) throw new Error('the answer is not a summary');
    return body;
  }

  async function poll() {
    try {
      const s = await fetchSummary();
      render(s);
      state.polls++;
      document.body.dataset.polls = String(state.polls);
      clearError();
    } catch (err) {
      state.failures++;
      document.body.dataset.failures = String(state.failures);
      showError(err && err.message ? err.message : String(err));
    } finally {
      setTimeout(poll, INTERVAL);
    }
  }

  document.body.dataset.polls = '0';
  document.body.dataset.failures = '0';
  document.body.dataset.refreshMs = String(INTERVAL);
  poll();
})();
