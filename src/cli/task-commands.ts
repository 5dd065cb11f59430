// task-commands.ts — `paratrain evaluate`, `predict` and `embed`: a fine-tuned checkpoint scored
// on labelled data, predicting for new text, and sentence vectors (see docs/fine-tuning.md).
import * as fs from 'node:fs';
import type { Command } from 'commander';

import { InferenceError } from '../infer/load';
import { embed, evaluateCheckpoint, predict, type EvaluationResult, type PredictInput } from '../infer/tasks';
import { readSquad } from '../tasks/readers/squad';

const number = (v: string) => Number(v);
const positive = (v: string) => parseInt(v, 10);

function print(value: unknown, json: boolean | undefined, text: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text());
}

/** A text file's lines, one input each (blank lines skipped). */
function inputLines(file: string): string[] {
  if (!fs.existsSync(file)) throw new InferenceError('ERR_USAGE', `--input ${file}: no such file`);
  const lines = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new InferenceError('ERR_USAGE', `--input ${file} holds no text`);
  return lines;
}

export function registerTaskCommands(program: Command): void {
  program
    .command('evaluate')
    .description("score a fine-tuned checkpoint on a labelled file with its task's metric")
    .requiredOption('--checkpoint <path>', 'a checkpoint step directory or a checkpoints root (newest)')
    .requiredOption('--data <file>', "labelled data in the task's format (TSV / JSON lines, CoNLL / NeMo, SQuAD JSON)")
    .option('--batch <n>', 'sequences per engine call', positive, 16)
    .option('--no-answer-threshold <x>', 'question answering: predict no answer above this score difference', number)
    .option('--tokenizer <file>', 'tokenizer.json, when the checkpoint carries none')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        checkpoint: string;
        data: string;
        batch: number;
        noAnswerThreshold?: number;
        tokenizer?: string;
        json?: boolean;
      }) => {
        if (!fs.existsSync(o.data)) throw new InferenceError('ERR_USAGE', `--data ${o.data}: no such file`);
        const r = await evaluateCheckpoint(o.checkpoint, o.data, o);
        print(r, o.json, () => formatEvaluation(r));
      },
    );

  program
    .command('predict')
    .description('predict with a fine-tuned checkpoint: labels, tagged entities, or answers')
    .argument('[text...]', 'texts (a tab between the two texts of a pair; tagging: words separated by spaces)')
    .requiredOption('--checkpoint <path>', 'a checkpoint step directory or a checkpoints root (newest)')
    .option('--input <file>', 'one text per line; question answering: a SQuAD JSON file')
    .option('--question <text>', 'question answering: the question')
    .option('--context <text>', 'question answering: the passage to answer from')
    .option('--no-answer-threshold <x>', 'question answering: no answer above this score difference', number)
    .option('--tokenizer <file>', 'tokenizer.json, when the checkpoint carries none')
    .option('--json', 'print JSON')
    .action(
      async (
        texts: string[],
        o: {
          checkpoint: string;
          input?: string;
          question?: string;
          context?: string;
          noAnswerThreshold?: number;
          tokenizer?: string;
          json?: boolean;
        },
      ) => {
        let input: PredictInput;
        if (o.question !== undefined || o.context !== undefined) {
          if (o.question === undefined || o.context === undefined)
            throw new InferenceError('ERR_USAGE', 'question answering needs both --question and --context');
          input = { questions: [{ question: o.question, context: o.context }] };
        } else if (o.input !== undefined && /\.json$/i.test(o.input)) {
          input = {
            questions: readSquad(o.input).map((q) => ({ id: q.id, question: q.question, context: q.context })),
          };
        } else input = { texts: o.input !== undefined ? [...texts, ...inputLines(o.input)] : texts };
        const r = await predict(o.checkpoint, input, o);
        print(
          r,
          o.json,
          () =>
            r.predictions
              .map((p) => {
                if ('label' in p) return `${p.label}\t${p.probabilities[p.label].toFixed(4)}\t${p.text}`;
                if ('value' in p) return `${p.value.toFixed(4)}\t${p.text}`;
                if ('tags' in p)
                  return p.entities
                    ? `${p.text}\n` + p.entities.map((e) => `  ${e.type}\t${e.text}\t[${e.start}, ${e.end})`).join('\n')
                    : p.tags.map((t) => `${t.word}/${t.tag}`).join(' ');
                return p.start === null
                  ? `${p.id}\t(no answer)\t${p.noAnswerScore.toFixed(3)}`
                  : `${p.id}\t${p.answer}\t[${p.start}, ${p.end})\t${p.score.toFixed(3)}`;
              })
              .join('\n') + '\n',
        );
      },
    );

  program
    .command('embed')
    .description("sentence vectors from an encoder checkpoint: the last layer's [CLS] or mean over tokens")
    .argument('[text...]', 'texts to embed')
    .requiredOption('--checkpoint <path>', 'a checkpoint step directory or a checkpoints root (newest)')
    .option('--input <file>', 'one text per line')
    .option('--pool <cls|mean>', 'the [CLS] vector or the mean over real tokens', 'cls')
    .option('--tokenizer <file>', 'tokenizer.json, when the checkpoint carries none')
    .option('--json', 'print JSON')
    .action(
      async (
        texts: string[],
        o: { checkpoint: string; input?: string; pool: string; tokenizer?: string; json?: boolean },
      ) => {
        if (o.pool !== 'cls' && o.pool !== 'mean')
          throw new InferenceError('ERR_USAGE', `--pool must be cls or mean, got ${o.pool}`);
        const all = o.input !== undefined ? [...texts, ...inputLines(o.input)] : texts;
        const r = await embed(o.checkpoint, all, { pool: o.pool, tokenizer: o.tokenizer });
        print(r, o.json, () => r.vectors.map((v) => v.map((x) => x.toFixed(6)).join(' ')).join('\n') + '\n');
      },
    );
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const f4 = (x: number) => x.toFixed(4);

/** The evaluation as a short report. */
export function formatEvaluation(r: EvaluationResult): string {
  const lines = [
    `${r.task}: ${r.examples} examples (${r.sequences} sequences) from ${r.file}, checkpoint ${r.checkpoint}`,
  ];
  if (r.truncated > 0) lines.push(`${r.truncated} sequences cut to fit model.seq_len`);
  if (r.unknownTags) lines.push(`${r.unknownTags} words have a tag the model does not know (scored as misses)`);
  const s = r.scores;
  if (s.task === 'text-classification') {
    if (s.report) {
      const rep = s.report;
      lines.push(`accuracy ${pct(rep.accuracy)}`, '', 'label\tprecision\trecall\tf1\tsupport');
      for (const c of rep.perClass)
        lines.push(`${c.label}\t${f4(c.precision)}\t${f4(c.recall)}\t${f4(c.f1)}\t${c.support}`);
      lines.push(
        `macro avg\t${f4(rep.macro.precision)}\t${f4(rep.macro.recall)}\t${f4(rep.macro.f1)}\t${rep.examples}`,
      );
      lines.push(
        `weighted avg\t${f4(rep.weighted.precision)}\t${f4(rep.weighted.recall)}\t${f4(rep.weighted.f1)}\t${rep.examples}`,
      );
      if (s.positiveF1 !== undefined) lines.push(`positive-class F1 ${f4(s.positiveF1)}`);
      lines.push('', 'confusion (rows true, columns predicted)', ['', ...rep.perClass.map((c) => c.label)].join('\t'));
      rep.confusion.forEach((row, i) => lines.push([rep.perClass[i].label, ...row].join('\t')));
    } else lines.push(`pearson ${f4(s.pearson!)}  spearman ${f4(s.spearman!)}  mse ${f4(s.mse!)}`);
  } else if (s.task === 'token-classification') {
    lines.push(`token accuracy ${pct(s.tokenAccuracy)} over ${s.words} words`);
    if (s.entities) {
      lines.push('', 'type\tprecision\trecall\tf1\tsupport');
      for (const [type, e] of Object.entries(s.entities.perType))
        lines.push(`${type}\t${f4(e.precision)}\t${f4(e.recall)}\t${f4(e.f1)}\t${e.support}`);
      const m = s.entities.micro;
      lines.push(`micro avg\t${f4(m.precision)}\t${f4(m.recall)}\t${f4(m.f1)}\t${m.support}`);
    }
  } else {
    const q = s.squad;
    lines.push(`exact match ${q.exact.toFixed(2)}  F1 ${q.f1.toFixed(2)}  (${q.questions} questions)`);
    if (q.hasAns)
      lines.push(`HasAns: exact ${q.hasAns.exact.toFixed(2)}  F1 ${q.hasAns.f1.toFixed(2)}  (${q.hasAns.questions})`);
    if (q.noAns)
      lines.push(`NoAns: exact ${q.noAns.exact.toFixed(2)}  F1 ${q.noAns.f1.toFixed(2)}  (${q.noAns.questions})`);
    if (q.bestF1 !== undefined)
      lines.push(
        `best exact ${q.bestExact!.toFixed(2)} (threshold ${q.bestExactThreshold!.toFixed(3)}), ` +
          `best F1 ${q.bestF1.toFixed(2)} (threshold ${q.bestF1Threshold!.toFixed(3)})`,
      );
  }
  return lines.join('\n') + '\n';
}
