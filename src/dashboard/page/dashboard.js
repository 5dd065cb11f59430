// dashboard.js — the page's script (plain browser JavaScript, no build step): it reads the run's
// records from the server-sent-event stream /events (src/dashboard/server.ts) and draws them with
// uPlot, each chart thinned to MAX_POINTS by downsample.js. It only reads; nothing here talks back
// to the run.
'use strict';

(function () {
  // A resumed run logs some steps again: the latest record of a step wins.
  let steps = new Map();
  let evals = new Map();
  let events = [];
  let ranks = new Map(); // rank -> (step -> rank record), from each rank's own log
  const charts = new Map(); // chart id -> { plot, labels }

  // Steps are whole numbers: ticks at 1, 2, 5, 10, 20, 50, … never at 2.5.
  const STEP_TICKS = [];
  for (let p = 1; p <= 1e9; p *= 10) STEP_TICKS.push(p, 2 * p, 5 * p);

  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

  // Points drawn per chart at most: a long log is thinned (min/max per bucket, the latest point
  // exact) so that a million steps draw as fast as a few thousand.
  const MAX_POINTS = 4000;

  /** Named losses worth their own curve: a model with one loss logs only its total. */
  function lossNames(map) {
    const names = new Set();
    for (const r of map.values()) for (const k of Object.keys(r.losses)) names.add(k);
    return names.size > 1 ? [...names].sort() : [];
  }

  const sortedSteps = (maps) => [...new Set(maps.flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);

  // Each chart: its x values (steps) and its series as [label, value at a step] pairs.
  function chartSpecs() {
    const train = lossNames(steps);
    const evalNames = lossNames(evals);
    const ofStep = (f) => (x) => f(steps.get(x));
    const ofEval = (f) => (x) => f(evals.get(x));
    const lossSeries = [['train loss', ofStep((s) => s && s.loss)]];
    for (const n of train) lossSeries.push(['train ' + n, ofStep((s) => s && s.losses[n])]);
    if (evals.size) lossSeries.push(['eval loss', ofEval((e) => e && e.loss)]);
    for (const n of evalNames) lossSeries.push(['eval ' + n, ofEval((e) => e && e.losses[n])]);
    const value = (r, name, scale) => (r && r[name] !== undefined ? r[name] * (scale || 1) : undefined);
    const field = (name, scale) => (x) => value(steps.get(x), name, scale);
    const xs = sortedSteps([steps, evals]);
    const specs = [
      { id: 'loss', title: 'Loss', xs, series: lossSeries },
      { id: 'lr', title: 'Learning rate', xs, series: [['lr', field('lr')]] },
      { id: 'grad-norm', title: 'Gradient norm', xs, series: [['grad_norm', field('grad_norm')]] },
      { id: 'tokens-per-s', title: 'Throughput (tokens/s)', xs, series: [['tokens/s', field('tokens_per_s')]] },
      { id: 'mfu', title: 'MFU (%)', xs, series: [['mfu %', field('mfu', 100)]] },
      { id: 'step-time', title: 'Step time (ms)', xs, series: [['step ms', field('step_ms')]] },
    ];
    if ([...steps.values()].some((s) => s.dp_wait_ms !== undefined))
      specs[5].series.push(['data-parallel wait ms', field('dp_wait_ms')]);
    // A launched job: each rank's step time and memory, one series per rank.
    if (ranks.size) {
      const order = [...ranks.keys()].sort((a, b) => a - b);
      const rankXs = sortedSteps([...ranks.values()]);
      const perRank = (name) => order.map((r) => ['rank ' + r, (x) => value(ranks.get(r).get(x), name)]);
      const logged = (name) => [...ranks.values()].some((m) => [...m.values()].some((p) => p[name] !== undefined));
      specs.push({ id: 'rank-step-time', title: 'Step time per rank (ms)', xs: rankXs, series: perRank('step_ms') });
      if (logged('dp_wait_ms'))
        specs.push({
          id: 'rank-dp-wait',
          title: 'Data-parallel wait per rank (ms)',
          xs: rankXs,
          series: perRank('dp_wait_ms'),
        });
      if (logged('rss_mb'))
        specs.push({ id: 'rank-memory', title: 'Memory per rank (RSS, MB)', xs: rankXs, series: perRank('rss_mb') });
    }
    return specs;
  }

  function chartWidth(el) {
    return Math.max(300, el.clientWidth || 560);
  }

  function draw(spec) {
    const xs = spec.xs;
    let el = document.getElementById('chart-' + spec.id);
    if (!el) {
      el = document.createElement('figure');
      el.id = 'chart-' + spec.id;
      el.className = 'chart';
      el.setAttribute('aria-label', spec.title);
      document.getElementById('charts').appendChild(el);
    }
    const full = [xs];
    for (const [, value] of spec.series)
      full.push(
        xs.map((x) => {
          const v = value(x);
          return typeof v === 'number' && Number.isFinite(v) ? v : null;
        }),
      );
    const data = window.paratrainDownsample.downsampleColumns(full, MAX_POINTS);
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
    // What a test (or a screen reader) can read without looking at pixels: the points drawn, the
    // steps they stand for, the series, and each series' latest drawn value.
    el.dataset.points = String(data[0].length);
    el.dataset.steps = String(xs.length);
    el.dataset.series = labels.join(',');
    el.dataset.last = data
      .slice(1)
      .map((ys) => {
        for (let i = ys.length - 1; i >= 0; i--) if (ys[i] !== null) return String(ys[i]);
        return '';
      })
      .join(',');
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
    for (const k of ['lr', 'grad_norm', 'tokens_per_s', 'mfu', 'step_ms', 'dp_wait_ms', 'rss_mb'])
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
    for (const spec of chartSpecs()) draw(spec);
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
    ranks = new Map();
    scheduleRender();
  });
  source.onmessage = (msg) => {
    for (const r of JSON.parse(msg.data)) {
      if (r.kind === 'step') steps.set(r.step, r);
      else if (r.kind === 'eval') evals.set(r.step, r);
      else if (r.kind === 'rank') {
        if (!ranks.has(r.rank)) ranks.set(r.rank, new Map());
        ranks.get(r.rank).set(r.step, r);
      } else if (r.event !== 'eval') events.push(r);
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
