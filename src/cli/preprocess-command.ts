// preprocess-command.ts — `paratrain preprocess`: text and JSON lines into Megatron's .bin/.idx
// (src/data/preprocess.ts). A progress bar on a terminal, a JSON progress line every 2 s otherwise;
// the outputs as a JSON line at the end with --json.
import { Option, type Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';

import { preprocess, type PreprocessProgress } from '../data/preprocess';
import type { TokenizerKind } from '../data/tokenizer';

const collect = (value: string, previous: string[]) => [...previous, value];

interface PreprocessFlags {
  input: string[];
  outputPrefix: string;
  tokenizer: string;
  tokenizerKind: TokenizerKind;
  vocabSize: string;
  cased?: boolean;
  jsonKeys: string[];
  splitSentences?: boolean;
  appendEod?: boolean;
  workers: string;
  documentSeparator: string;
  maxDocumentChars: string;
  cacheDir: string;
  json?: boolean;
}

export function registerPreprocessCommand(program: Command): void {
  program
    .command('preprocess')
    .description("tokenize text files or JSON lines once into Megatron's .bin/.idx (docs/preprocessed-data.md)")
    .requiredOption('--input <path>', 'a file, a directory of .txt/.jsonl files, or a glob (repeatable)', collect, [])
    .requiredOption(
      '--output-prefix <prefix>',
      'writes PREFIX_<key>_document|sentence.bin/.idx and PREFIX_tokenizer.json',
    )
    .option('--tokenizer <path|auto>', "a tokenizer.json, or 'auto' to train one on the first 100 MB", 'auto')
    .addOption(
      new Option('--tokenizer-kind <kind>', "what 'auto' trains")
        .choices(['wordpiece', 'bpe', 'roberta-bpe'])
        .default('wordpiece'),
    )
    .option('--vocab-size <n>', "what 'auto' trains (at most)", '30522')
    .option('--cased', "'auto' wordpiece: keep case (BERT cased) instead of lower-casing the text")
    .option('--json-keys <key>', 'JSON lines: the field to take (repeatable: one output per key)', collect, [])
    .option('--split-sentences', 'a sequence per sentence (BERT-style data), not per document')
    .option('--append-eod', 'end every document with the end-of-document token')
    .option('--workers <n>', 'tokenizing threads', '1')
    .option('--document-separator <sep>', "text files: 'auto', 'blank-line', 'file' or a separator line", 'auto')
    .option('--max-document-chars <n>', 'cut longer documents at a line break (0 = no limit)', '50000')
    .option('--cache-dir <dir>', "where 'auto' caches its tokenizer", '.paratrain-cache')
    .option('--json', 'JSON progress lines and a JSON summary')
    .action(async (o: PreprocessFlags) => {
      const json = o.json || !process.stderr.isTTY;
      let bar: SingleBar | undefined;
      let lastLine = 0;
      const onProgress = (p: PreprocessProgress) => {
        const mbPerS = p.seconds > 0 ? p.chars / 1e6 / p.seconds : 0;
        if (!json) {
          bar ??= new SingleBar(
            {
              format: ' {bar} {percentage}% | {documents} docs | {tokens} tokens | {mbps} MB/s',
              stream: process.stderr,
            },
            Presets.shades_classic,
          );
          if (!bar.isActive) bar.start(Math.max(p.inputBytes, 1), 0, { documents: 0, tokens: 0, mbps: '0' });
          bar.update(Math.min(p.chars, p.inputBytes), {
            documents: p.documents,
            tokens: p.tokens,
            mbps: mbPerS.toFixed(1),
          });
        } else if (p.seconds - lastLine >= 2) {
          lastLine = p.seconds;
          const line = {
            event: 'progress',
            key: p.key,
            documents: p.documents,
            tokens: p.tokens,
            mb: p.chars / 1e6,
            mb_per_s: mbPerS,
          };
          process.stderr.write(JSON.stringify(line) + '\n');
        }
      };
      try {
        const outputs = await preprocess({
          inputs: o.input,
          outputPrefix: o.outputPrefix,
          tokenizer: o.tokenizer,
          tokenizerKind: o.tokenizerKind,
          vocabSize: Number(o.vocabSize),
          ...(o.cased ? { lowercase: false } : {}),
          cacheDir: o.cacheDir,
          jsonKeys: o.jsonKeys,
          splitSentences: o.splitSentences,
          appendEod: o.appendEod,
          workers: Number(o.workers),
          corpus: { documentSeparator: o.documentSeparator, maxDocumentChars: Number(o.maxDocumentChars) },
          onProgress,
        });
        bar?.stop();
        if (o.json) process.stdout.write(JSON.stringify({ outputs }) + '\n');
        else
          for (const out of outputs)
            process.stdout.write(
              `wrote ${out.prefix}.bin/.idx: ${out.documents} documents, ${out.sequences} sequences, ` +
                `${out.tokens} tokens in ${out.seconds.toFixed(1)} s (${Math.round(out.tokensPerSecond)} tokens/s)\n`,
            );
      } finally {
        bar?.stop();
      }
    });
}
