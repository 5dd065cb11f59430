// The fine-tuning metrics on small cases worked out by hand (the working is in the comments).
import { describe, expect, it } from 'vitest';
import { averageRanks, classificationReport, pearson, spearman } from '../../src/tasks/metrics/classification';
import { chunksOf, entityReport, isIob2 } from '../../src/tasks/metrics/entities';
import { exactMatch, normalizeAnswer, squadReport, tokenF1 } from '../../src/tasks/metrics/squad';

describe('classification', () => {
  it('accuracy, per-class scores, macro and weighted averages, confusion matrix', () => {
    // truth 0 0 1 1 1 2, predicted 0 1 1 1 0 2:
    // class 0: 1 right of 2 true, 2 predicted → P = R = F1 = 1/2; class 1: 2 of 3, 3 → 2/3; class 2: 1 of 1, 1 → 1.
    const report = classificationReport([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], ['neg', 'pos', 'neu']);
    expect(report.examples).toBe(6);
    expect(report.accuracy).toBeCloseTo(4 / 6, 12);
    expect(report.confusion).toEqual([
      [1, 1, 0],
      [1, 2, 0],
      [0, 0, 1],
    ]);
    const f1s = report.perClass.map((c) => [c.label, c.precision, c.recall, c.f1, c.support]);
    expect(f1s[0]).toEqual(['neg', 0.5, 0.5, 0.5, 2]);
    expect(f1s[1][1]).toBeCloseTo(2 / 3, 12);
    expect(f1s[1][3]).toBeCloseTo(2 / 3, 12);
    expect(f1s[2]).toEqual(['neu', 1, 1, 1, 1]);
    // macro = (1/2 + 2/3 + 1) / 3 = 13/18; weighted = (1/2·2 + 2/3·3 + 1·1) / 6 = 2/3.
    expect(report.macro.f1).toBeCloseTo(13 / 18, 12);
    expect(report.macro.precision).toBeCloseTo(13 / 18, 12);
    expect(report.weighted.f1).toBeCloseTo(2 / 3, 12);
    expect(report.weighted.recall).toBeCloseTo(2 / 3, 12);
  });

  it('a class never predicted scores 0 precision, not NaN', () => {
    // truth 0 1, predicted 0 0: class 0 P = 1/2, R = 1, F1 = 2/3; class 1 P = R = F1 = 0.
    const report = classificationReport([0, 1], [0, 0], ['a', 'b']);
    expect(report.perClass[0].f1).toBeCloseTo(2 / 3, 12);
    expect(report.perClass[1]).toEqual({ label: 'b', precision: 0, recall: 0, f1: 0, support: 1 });
    expect(() => classificationReport([0, 2], [0, 0], ['a', 'b'])).toThrow('class id 2 is not in [0, 2)');
  });

  it('Pearson and Spearman (tied values take their mean rank)', () => {
    // x 1 2 3 4, y 2 4 5 4: Σdxdy = 3.5, Σdx² = 5, Σdy² = 4.75 → r = 3.5 / √23.75.
    expect(pearson([1, 2, 3, 4], [2, 4, 5, 4])).toBeCloseTo(3.5 / Math.sqrt(23.75), 12);
    // ranks of y: 1, 2.5, 4, 2.5 → Σdxdy = 3, Σdy² = 4.5 → ρ = 3 / √22.5.
    expect(Array.from(averageRanks([2, 4, 5, 4]))).toEqual([1, 2.5, 4, 2.5]);
    expect(spearman([1, 2, 3, 4], [2, 4, 5, 4])).toBeCloseTo(3 / Math.sqrt(22.5), 12);
    expect(spearman([1, 2, 3], [10, 20, 30])).toBeCloseTo(1, 12);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBe(0);
  });
});

describe('entities (IOB2 chunks, as conlleval)', () => {
  it('finds chunks: B starts one, I continues its own type, I after O or another type starts one', () => {
    expect(chunksOf(['B-PER', 'I-LOC', 'I-LOC', 'O', 'I-PER', 'B-PER', 'I-PER'])).toEqual([
      { type: 'PER', start: 0, end: 0 },
      { type: 'LOC', start: 1, end: 2 },
      { type: 'PER', start: 4, end: 4 },
      { type: 'PER', start: 5, end: 6 },
    ]);
    expect(isIob2(['O', 'B-X', 'I-X'])).toBe(true);
    expect(isIob2(['NN', 'VB'])).toBe(false);
  });

  it('per-type and micro precision / recall / F1, and token accuracy', () => {
    // Sentence 1: gold PER(0-1) LOC(3-4) ORG(6); predicted PER(0-1) LOC(3) ORG(6) → 2 of 3 right.
    // Sentence 2: gold PER(0) PER(1); predicted PER(0-1) → none right.
    const gold = [
      ['B-PER', 'I-PER', 'O', 'B-LOC', 'I-LOC', 'O', 'B-ORG'],
      ['B-PER', 'B-PER'],
    ];
    const predicted = [
      ['B-PER', 'I-PER', 'O', 'B-LOC', 'O', 'O', 'I-ORG'],
      ['B-PER', 'I-PER'],
    ];
    const report = entityReport(gold, predicted);
    // PER: 3 gold, 2 predicted, 1 right → P 1/2, R 1/3, F1 2/5.
    expect(report.perType.PER).toMatchObject({ support: 3, predicted: 2, correct: 1, precision: 0.5 });
    expect(report.perType.PER.recall).toBeCloseTo(1 / 3, 12);
    expect(report.perType.PER.f1).toBeCloseTo(0.4, 12);
    expect(report.perType.LOC).toMatchObject({ precision: 0, recall: 0, f1: 0, support: 1 });
    expect(report.perType.ORG).toMatchObject({ precision: 1, recall: 1, f1: 1 });
    // micro: 5 gold, 4 predicted, 2 right → P 1/2, R 2/5, F1 4/9.
    expect(report.micro).toMatchObject({ support: 5, predicted: 4, correct: 2, precision: 0.5, recall: 0.4 });
    expect(report.micro.f1).toBeCloseTo(4 / 9, 12);
    // tags: 5 of 7 right in sentence 1, 1 of 2 in sentence 2.
    expect(report.tokenAccuracy).toBeCloseTo(6 / 9, 12);
  });
});

describe('SQuAD', () => {
  it('normalises answers: lower case, no punctuation, no articles, single spaces', () => {
    expect(normalizeAnswer('The  Quick, brown fox!')).toBe('quick brown fox');
    expect(normalizeAnswer('An apple a day')).toBe('apple day');
    expect(normalizeAnswer('theatre')).toBe('theatre'); // articles only as words
    expect(exactMatch('the Broncos', 'Broncos')).toBe(1);
    // predicted {big, cat}, gold {big, black, cat}: P 1, R 2/3 → F1 4/5.
    expect(tokenF1('the big cat', 'a big black cat')).toBeCloseTo(0.8, 12);
    expect(tokenF1('', '')).toBe(1);
    expect(tokenF1('something', '')).toBe(0);
  });

  it('v1.1: the best over gold answers, as percentages', () => {
    const report = squadReport([
      { id: 'q1', answers: ['Denver Broncos', 'Broncos'], prediction: 'the Broncos' }, // EM 1, F1 1
      { id: 'q2', answers: ['Santa Clara, California'], prediction: 'Santa Clara' }, // EM 0, F1 4/5
    ]);
    expect(report).toEqual({ questions: 2, exact: 50, f1: 90 });
  });

  it('v2.0: HasAns / NoAns and the best no-answer threshold', () => {
    const report = squadReport([
      { id: 'q1', answers: ['Broncos'], prediction: 'Broncos', noAnswerScore: -2 }, // 1, 1
      { id: 'q2', answers: ['Santa Clara'], prediction: 'Clara', noAnswerScore: 0.5 }, // 0, 2/3
      { id: 'q3', answers: [], prediction: 'Levi', noAnswerScore: 1 }, // 0, 0
      { id: 'q4', answers: [], prediction: '', noAnswerScore: 3 }, // 1, 1
    ]);
    expect(report.exact).toBeCloseTo(50, 10);
    expect(report.f1).toBeCloseTo((100 * (2 + 2 / 3)) / 4, 10);
    expect(report.hasAns).toEqual({ questions: 2, exact: 50, f1: expect.closeTo(100 * (5 / 6), 10) });
    expect(report.noAns).toEqual({ questions: 2, exact: 50, f1: 50 });
    // Start with "no answer" everywhere (2 right), admit by score: q1 +1 → 3; q2 +0 (EM) or +2/3 (F1);
    // q3 −1 (it answered); q4 ±0. Best EM 3/4 at −2; best F1 (3 + 2/3)/4 at 0.5.
    expect(report.bestExact).toBeCloseTo(75, 10);
    expect(report.bestExactThreshold).toBe(-2);
    expect(report.bestF1).toBeCloseTo((100 * (3 + 2 / 3)) / 4, 10);
    expect(report.bestF1Threshold).toBe(0.5);
  });
});
