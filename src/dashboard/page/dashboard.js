// dashboard.js — the page's only script (plain browser JavaScript, no build step): it reads the
// run's records from the server-sent-event stream /events (src/dashboard/server.ts) and draws them
// with uPlot. It only reads; nothing here talks back to the run.
'use strict';

(function () {
  // A resumed run logs some steps again: the latest record of a step wins.
  let steps = new Map();
  let evals = new Map();
  let events = [];
  const charts = new Map(); // chart id -> { plot, labels }

  // Steps are whole numbers: ticks at 1, 2, 5, 10, 20, 50, … never at 2.5.
  const STEP_TICKS = [];
  for (let p = 1; p <= 1e9; p *= 10) STEP_TICKS.push(p, 2 * p, 5 * p);

  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

  /** Named losses worth their own curve: a model with one loss logs only its total. */
  function lossNames(map) {
    const names = new Set();
    for (const r of map.values()) for (const k of Object.keys(r.losses)) names.add(k);
    return names.size > 1 ? [...names].sort() : [];
  }

  // Each chart: its series as [label, value of a step (step record, eval record)] pairs.
  function chartSpecs() {
    const train = lossNames(steps);
    const evalNames = lossNames(evals);
    const lossSeries = [['train loss', (s) => s && s.loss]];
    for (const n of train) lossSeries.push(['train ' + n, (s) => s && s.losses[n]]);
    if (evals.size) lossSeries.push(['eval loss', (_s, e) => e && e.loss]);
    for (const n of evalNames) lossSeries.push(['eval ' + n, (_s, e) => e && e.losses[n]]);
    const field = (name, scale) => (s) => (s && s[name] !== undefined ? s[name] * (scale || 1) : undefined);
    const specs = [
      { id: 'loss', title: 'Loss', series: lossSeries },
      { id: 'lr', title: 'Learning rate', series: [['lr', field('lr')]] },
      { id: 'grad-norm', title: 'Gradient norm', series: [['grad_norm', field('grad_norm')]] },
      { id: 'tokens-per-s', title: 'Throughput (tokens/s)', series: [['tokens/s', field('tokens_per_s')]] },
      { id: 'mfu', title: 'MFU (%)', series: [['mfu %', field('mfu', 100)]] },
      { id: 'step-time', title: 'Step time (ms)', series: [['step ms', field('step_ms')]] },
    ];
    if ([...steps.values()].some((s) => s.dp_wait_ms !== undefined))
      specs[5].series.push(['data-parallel wait ms', field('dp_wait_ms')]);
    return specs;
  }

  function chartWidth(el) {
    return Math.max(300, el.clientWidth || 560);
  }

  function draw(spec, xs) {
    let el = document.getElementById('chart-' + spec.id);
    if (!el) {
      el = document.createElement('figure');
      el.id = 'chart-' + spec.id;
      el.className = 'chart';
      el.setAttribute('aria-label', spec.title);
      document.getElementById('charts').appendChild(el);
    }
    const data = [xs];
    for (const [, value] of spec.series)
      data.push(
        xs.map((x) => {
          const v = value(steps.get(x), evals.get(x));
          return typeof v === 'number' && Number.isFinite(v) ? v : null;
        }),
      );
    const labels = spec.series.map(([label]) => label);
    let chart = charts.get(spec.id);
    // A new named loss (or the first eval) adds a series: build the chart again.
    if (chart && chart.labels.join('\n') !== labels.join('\n')) {
      chart.plot.destroy();
      chart = undefined;
    }
    if (!chart) {
      const opts = {
        title: spec.title,
        width: chartWidth(el),
        height: 260,
        scales: { x: { time: false } },
        axes: [{ incrs: STEP_TICKS }, {}],
        series: [
          { label: 'step' },
          ...labels.map((label, i) => ({
            label,
            stroke: COLORS[i % COLORS.length],
            width: 1.5,
            // Evals are sparse: join their points across the steps in between.
            spanGaps: label.startsWith('eval'),
            points: { show: label.startsWith('eval') },
          })),
        ],
      };
      chart = { plot: new uPlot(opts, data, el), labels };
      charts.set(spec.id, chart);
    } else chart.plot.setData(data);
    // What a test (or a screen reader) can read without looking at pixels.
    el.dataset.points = String(xs.length);
    el.dataset.series = labels.join(',');
  }

  function formatValue(v) {
    if (Math.abs(v) >= 1000 || Number.isInteger(v)) return String(Math.round(v));
    if (Math.abs(v) < 0.01 && v !== 0) return v.toExponential(3);
    return v.toFixed(4);
  }

  function showLatest() {
    const dl = document.getElementById('latest');
    const last = [...steps.values()].reduce((a, b) => (!a || b.step > a.step ? b : a), undefined);
    dl.replaceChildren();
    if (!last) return;
    dl.dataset.step = String(last.step);
    const rows = [
      ['step', last.step],
      ['loss', last.loss],
    ];
    for (const [k, v] of Object.entries(last.losses)) if (Object.keys(last.losses).length > 1) rows.push([k, v]);
    for (const k of ['lr', 'grad_norm', 'tokens_per_s', 'mfu', 'step_ms', 'dp_wait_ms'])
      if (last[k] !== undefined) rows.push([k, last[k]]);
    for (const [k, v] of rows) {
      const div = document.createElement('div');
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = formatValue(v);
      dd.dataset.metric = k;
      dd.dataset.value = String(v);
      div.append(dt, dd);
      dl.appendChild(div);
    }
  }

  function showEvents() {
    const body = document.querySelector('#events tbody');
    body.replaceChildren();
    // Two logs feed the list (rank 0's and the launcher's): show them in time order.
    const byTime = events.slice().sort((a, b) => (a.time || '').localeCompare(b.time || ''));
    for (const e of byTime) {
      const tr = document.createElement('tr');
      tr.dataset.event = e.event;
      tr.dataset.level = e.level;
      for (const text of [
        e.time ? e.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '',
        e.event,
        e.step ?? '',
        e.msg,
      ]) {
        const td = document.createElement('td');
        td.textContent = String(text);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function render() {
    const xs = [...new Set([...steps.keys(), ...evals.keys()])].sort((a, b) => a - b);
    for (const spec of chartSpecs()) draw(spec, xs);
    showLatest();
    showEvents();
  }

  // Many messages can arrive at once (the backlog, a burst of steps): draw once for all of them.
  let pending = false;
  function scheduleRender() {
    if (pending) return;
    pending = true;
    setTimeout(() => {
      pending = false;
      render();
    }, 50);
  }

  function setStatus(state, text) {
    const el = document.getElementById('status');
    el.dataset.state = state;
    el.textContent = text;
  }

  const source = new EventSource('/events');
  source.onopen = () => setStatus('live', 'live');
  source.onerror = () => setStatus('reconnecting', 'reconnecting…');
  source.addEventListener('reset', () => {
    steps = new Map();
    evals = new Map();
    events = [];
    scheduleRender();
  });
  source.onmessage = (msg) => {
    for (const r of JSON.parse(msg.data)) {
      if (r.kind === 'step') steps.set(r.step, r);
      else if (r.kind === 'eval') evals.set(r.step, r);
      else if (r.event !== 'eval') events.push(r);
    }
    setStatus('live', 'live');
    scheduleRender();
  };

  window.addEventListener('resize', () => {
    for (const [id, chart] of charts) {
      const el = document.getElementById('chart-' + id);
      chart.plot.setSize({ width: chartWidth(el), height: 260 });
    }
  });
})();
