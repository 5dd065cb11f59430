// Metrics of text classification: accuracy, per-class precision / recall / F1 with support, their
// macro and support-weighted averages, and the confusion matrix, with scikit-learn's conventions
// (rows are true labels, columns predicted ones; a ratio with a zero denominator is 0).

export interface ClassScores {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Examples whose true label this is. */
  support: number;
}

export interface AveragedScores {
  precision: number;
  recall: number;
  f1: number;
}

export interface ClassificationReport {
  examples: number;
  accuracy: number;
  perClass: ClassScores[];
  /** Unweighted mean over classes. */
  macro: AveragedScores;
  /** Mean over classes weighted by support. */
  weighted: AveragedScores;
  /** confusion[t][p]: examples of true class t predicted as p. */
  confusion: number[][];
}

/** `truth` and `predicted` hold class ids in [0, labels.length). */
export function classificationReport(
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  labels: readonly string[],
): ClassificationReport {
  const n = checkPaired(truth, predicted);
  const k = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const [t, p] = [truth[i], predicted[i]];
    for (const id of [t, p]) {
      if (!Number.isInteger(id) || id < 0 || id >= k) throw new RangeError(`class id ${id} is not in [0, ${k})`);
    }
    confusion[t][p]++;
    if (t === p) correct++;
  }
  const perClass = labels.map((label, c) => {
    const truePositives = confusion[c][c];
    const support = confusion[c].reduce((sum, x) => sum + x, 0);
    const predictedAs = confusion.reduce((sum, row) => sum + row[c], 0);
    const precision = ratio(truePositives, predictedAs);
    const recall = ratio(truePositives, support);
    return { label, precision, recall, f1: harmonicMean(precision, recall), support };
  });
  const average = (weightOf: (s: ClassScores) => number): AveragedScores => {
    const total = perClass.reduce((sum, s) => sum + weightOf(s), 0);
    const mean = (field: keyof AveragedScores) =>
      ratio(
        perClass.reduce((sum, s) => sum + s[field] * weightOf(s), 0),
        total,
      );
    return { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') };
  };
  return {
    examples: n,
    accuracy: ratio(correct, n),
    perClass,
    macro: average(() => 1),
    weighted: average((s) => s.support),
    confusion,
  };
}

/** Pearson's correlation of two samples; 0 when either is constant. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = checkPaired(x, y);
  let meanX = 0,
    meanY = 0;
  for (let i = 0; i < n; i++) {
    meanX += x[i] / n;
    meanY += y[i] / n;
  }
  let sxy = 0,
    sxx = 0,
    syy = 0;
  for (let i = 0; i < n; i++) {
    const [dx, dy] = [x[i] - meanX, y[i] - meanY];
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

/** Spearman's rank correlation: Pearson's over ranks, tied values taking their mean rank. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPaired(x, y);
  return pearson(averageRanks(x), averageRanks(y));
}

/** Ranks from 1, ties sharing the mean of the ranks they span (as scipy's rankdata 'average'). */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[a] - values[b]);
  const ranks = new Float64Array(values.length);
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && values[order[end]] === values[order[start]]) end++;
    const rank = (start + 1 + end) / 2; // the mean of ranks start+1 .. end
    for (let i = start; i < end; i++) ranks[order[i]] = rank;
    start = end;
  }
  return ranks;
}

export function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}

export function harmonicMean(precision: number, recall: number): number {
  return precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}

function checkPaired(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`${a.length} true values but ${b.length} predictions`);
  return a.length;
}
