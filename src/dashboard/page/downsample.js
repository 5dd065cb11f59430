// downsample.js — thins a long series for drawing, so a million-step log stays a few thousand
// points on screen: min/max bucketing. The points are cut into buckets of equal count and each
// bucket keeps its lowest and its highest value, so spikes (a loss blow-up, a slow step) survive
// where an average would hide them; the first and the latest point are always kept exactly.
// Plain script, no build: the page loads it as /downsample.js (window.paratrainDownsample), and
// `paratrain plot` (src/plot/) requires it as a CommonJS module; downsample.d.ts types it.
'use strict';

(function () {
  /**
   * Indices (ascending) of the points of `ys` to draw, at most `maxPoints` (at least 4) of them:
   * all its finite values when there are that few, else the first, the last, and each bucket's
   * minimum and maximum. Missing values (null, undefined, NaN) are never picked.
   */
  function minMaxIndices(ys, maxPoints) {
    const valid = [];
    for (let i = 0; i < ys.length; i++) if (typeof ys[i] === 'number' && Number.isFinite(ys[i])) valid.push(i);
    const limit = Math.max(4, Math.floor(maxPoints));
    if (valid.length <= limit) return valid;
    const inner = valid.length - 2; // between the first and the last, which are kept
    const buckets = Math.floor((limit - 2) / 2);
    const out = [valid[0]];
    for (let b = 0; b < buckets; b++) {
      const from = 1 + Math.floor((b * inner) / buckets);
      const to = 1 + Math.floor(((b + 1) * inner) / buckets);
      let lo = from;
      let hi = from;
      for (let j = from + 1; j < to; j++) {
        if (ys[valid[j]] < ys[valid[lo]]) lo = j;
        if (ys[valid[j]] > ys[valid[hi]]) hi = j;
      }
      out.push(valid[Math.min(lo, hi)]);
      if (hi !== lo) out.push(valid[Math.max(lo, hi)]);
    }
    out.push(valid[valid.length - 1]);
    return out;
  }

  /**
   * uPlot's data, [xs, ys1, ys2, …] (every column as long as xs), thinned to at most `maxPoints`
   * x values: the union of each series' min/max picks over an equal share of the budget, so the
   * columns stay aligned on one x. Returned as it is when it is short enough.
   */
  function downsampleColumns(data, maxPoints) {
    const xs = data[0];
    const series = data.slice(1);
    if (xs.length <= maxPoints || series.length === 0) return data;
    const share = Math.max(4, Math.floor(maxPoints / series.length));
    const keep = new Set();
    for (const ys of series) for (const i of minMaxIndices(ys, share)) keep.add(i);
    keep.add(xs.length - 1); // the latest x, even where every series is missing there
    const idx = [...keep].sort((a, b) => a - b);
    return data.map((col) => idx.map((i) => col[i]));
  }

  const api = { minMaxIndices, downsampleColumns };
  if (typeof module === 'object' && module.exports) module.exports = api;
  else window.paratrainDownsample = api;
})();
