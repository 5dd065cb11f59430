// schema.ts — the run configuration: every key, its type, its default and what is allowed.
// Configs are YAML files (configs/*.yaml) plus `--set key=value` overrides; this schema validates
// the merged result before anything starts.
import { z } from 'zod';
import { dataPathProblem, type DataPath } from '../data/blend';
import { DEFAULT_JSON_KEY, DEFAULT_MAX_DOCUMENT_CHARS } from '../data/corpus';

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const probability = z.number().min(0).lt(1);
/**
 * A size with a ceiling: far beyond any model trained, but low enough that the engine's sizes
 * (products of these, in 64-bit) cannot overflow; the memory estimate (src/engine/memory.ts) then
 * refuses what this machine cannot hold.
 */
const sizeUpTo = (max: number, min = 1) =>
  z
    .number()
    .int()
    .min(min)
    .max(max, { error: `at most ${max} (larger would overflow the engine's sizes or exhaust memory)` });

/** The model families: each is a composition of parts (src/engine/spec.ts, docs/models.md). */
export const MODEL_FAMILIES = ['bert', 'gpt', 'roberta', 'albert', 'electra'] as const;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

export const modelSchema = z
  .object({
    arch: z.enum(MODEL_FAMILIES),
    layers: sizeUpTo(1024),
    hidden: sizeUpTo(65536),
    heads: sizeUpTo(1024),
    ffn: sizeUpTo(262144),
    vocab_size: sizeUpTo(16_777_216, 8),
    seq_len: sizeUpTo(131072),
    /** Rows of the position embedding; defaults to seq_len. */
    max_positions: sizeUpTo(131072).optional(),
    dropout: probability.default(0.1),
    /** Attention-probability dropout; defaults to `dropout`. */
    attention_dropout: probability.optional(),
    /** ALBERT, ELECTRA: the width E of the embeddings, projected to `hidden`; defaults to hidden. */
    embedding_size: sizeUpTo(65536).optional(),
    /** Distinct blocks; consecutive layers share one (ALBERT: 1). Defaults to layers (no sharing), ALBERT 1. */
    layer_groups: sizeUpTo(1024).optional(),
    /** ELECTRA's generator, sized after Clark et al.: hidden = fraction·hidden, heads = hidden/64, ffn = 4·hidden. */
    generator: z
      .object({
        hidden_fraction: z.number().gt(0).max(1).default(0.25),
        /** Defaults to model.layers. */
        layers: sizeUpTo(1024).optional(),
        /** Defaults to max(1, generator hidden / 64). */
        heads: sizeUpTo(1024).optional(),
        /** Defaults to 4 × generator hidden. */
        ffn: sizeUpTo(262144).optional(),
      })
      .strict()
      .optional(),
    /** Weight of each named loss in the objective (Σ weight·loss); ELECTRA's rtd defaults to 50, the rest to 1. */
    loss_weights: z.record(z.string(), z.number().nonnegative()).optional(),
    /**
     * Fine-tuning: the checkpoint (a step directory or a run's checkpoints root, e.g. one imported from
     * Hugging Face) whose weights start the run. Tensors the task's model lacks are dropped; the heads
     * the checkpoint lacks start from train.seed.
     */
    init: z.string().min(1).optional(),
  })
  .strict();

/** What a run trains: pretraining (the family's own objective) or a fine-tuning task with its head. */
export const TASK_NAMES = ['pretrain', 'text-classification', 'token-classification', 'question-answering'] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export const taskSchema = z
  .object({
    name: z.enum(TASK_NAMES).default('pretrain'),
    /** Labelled training data: TSV/JSON lines (text classification), text_/labels_ or CoNLL (tokens), SQuAD JSON. */
    train: z.string().min(1).optional(),
    /** Labelled development data, evaluated with the task's metric every train.eval_every steps and at the end. */
    dev: z.string().min(1).optional(),
    /** The label list (class id = index); defaults to the labels of the training data, sorted. Saved with the model. */
    labels: z.array(z.string().min(1)).min(1).optional(),
    /** Text classification: one output trained with mean squared error against numeric labels. */
    regression: z.boolean().default(false),
    /** Question answering (BERT's run_squad): question tokens kept, window stride, longest answer predicted. */
    max_query_length: positiveInt.default(64),
    doc_stride: positiveInt.default(128),
    max_answer_length: positiveInt.default(30),
  })
  .strict();

export const trainSchema = z
  .object({
    /** Optimizer steps; fine-tuning may give train.epochs instead (steps = ⌈epochs · examples / global batch⌉). */
    steps: positiveInt,
    /** Fine-tuning: passes over the training examples; sets train.steps when the data is read. */
    epochs: z.number().positive().max(1e6).optional(),
    micro_batch: sizeUpTo(65536),
    grad_accum: sizeUpTo(65536).default(1),
    lr: z.number().positive(),
    seed: nonNegativeInt.default(42),
    /** Warm-up as a fraction of `steps` (NVIDIA's BERT recipe: 0.2843 in phase 1). */
    warmup: z.number().min(0).max(1).default(0.1),
    schedule: z.enum(['poly', 'linear', 'cosine', 'constant']).default('poly'),
    poly_power: z.number().positive().default(0.5),
    min_lr: z.number().nonnegative().default(0),
    log_every: positiveInt.default(1),
    /** Evaluate on the held-out slice every N steps (0 = only at the end). */
    eval_every: nonNegativeInt.default(0),
    eval_batches: sizeUpTo(1_000_000).default(4),
    /** Engine threads; 0 = PARATRAIN_NUM_THREADS or all cores. */
    threads: sizeUpTo(4096, 0).default(0),
    /** What a non-finite loss does: stop with an error, or skip the update and go on. */
    on_nan: z.enum(['error', 'skip']).default('error'),
  })
  .strict();

/** A power of two from 1 to 2^127: a loss scale that scales and unscales fp32 values exactly. */
const powerOfTwoScale = z.number().refine((x) => x >= 1 && x <= 2 ** 127 && Number.isInteger(Math.log2(x)), {
  message: 'must be a power of two from 1 to 2^127 (e.g. 65536 = 2^16)',
});

/** Loss scaling (docs/configuration.md, "Loss scaling"): what fp16 training needs against underflow. */
export const lossScaleSchema = z
  .object({
    /** auto: dynamic with precision fp16, off otherwise; static keeps `initial`; off is 1. */
    mode: z.enum(['auto', 'dynamic', 'static', 'off']).default('auto'),
    /** The first dynamic scale, or the static one (2^16, as DeepSpeed's initial_scale_power 16). */
    initial: powerOfTwoScale.default(65536),
    /** Clean steps after which a dynamic scale doubles (Megatron-LM's --loss-scale-window). */
    window: positiveInt.default(1000),
    /** The dynamic scale never goes below this; an overflow there is treated as train.on_nan says. */
    min: powerOfTwoScale.default(1),
  })
  .strict();

export const optimizerSchema = z
  .object({
    name: z.enum(['lamb', 'adamw']).default('lamb'),
    beta1: probability.default(0.9),
    beta2: probability.default(0.999),
    eps: z.number().positive().default(1e-6),
    weight_decay: z.number().nonnegative().default(0.01),
    /** LAMB form: nvlamb (g/‖g‖ always, ε inside the sqrt) or apex (FusedLAMB: clip, ε outside). */
    variant: z.enum(['nvlamb', 'apex']).default('nvlamb'),
    /** AdamW and apex-LAMB gradient clipping; 0 disables it. */
    max_grad_norm: z.number().nonnegative().default(1.0),
  })
  .strict();

export const dataSchema = z
  .object({
    /** 'bundled' (Moby-Dick + State of the Union addresses), a text or JSON-lines file, or a directory of them. */
    corpus: z.string().min(1).default('bundled'),
    /**
     * Where a user's text files split into documents: 'auto' (a single file at blank lines, each
     * file of a directory whole), 'blank-line', 'file', or a separator line such as '<|endoftext|>'.
     */
    document_separator: z.string().min(1).default('auto'),
    /** User documents longer than this many characters are cut at a line break; 0 = no limit. */
    max_document_chars: nonNegativeInt.default(DEFAULT_MAX_DOCUMENT_CHARS),
    /**
     * GPT: a Megatron indexed dataset PREFIX (PREFIX.bin/.idx, e.g. from `paratrain preprocess`) instead of
     * corpus, or a blend of several: [0.7, PREFIX_A, 0.3, PREFIX_B] (or that as one string, "0.7 A 0.3 B").
     */
    path: z
      .unknown()
      .superRefine((value, ctx) => {
        const problem = value === undefined ? undefined : dataPathProblem(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .transform((value) => value as DataPath)
      .optional(),
    /** With path: train,valid,test weights by documents (Megatron's form); training reads the first, evaluation the second. */
    split: z
      .union([z.string().min(1), z.number()])
      .transform(String)
      .default('969,30,1'),
    /** JSON-lines corpora (.jsonl, .json): the field that holds each document's text. */
    json_key: z.string().min(1).default(DEFAULT_JSON_KEY),
    /** 'auto' trains (and caches) a tokenizer on the corpus; or a path to any tokenizer.json. */
    tokenizer: z.string().min(1).default('auto'),
    /**
     * A WordPiece tokenizer that paratrain trains: lower-case the text first (BERT uncased, the default),
     * or false to keep case (BERT cased), which keeps the capitals that mark names for tagging.
     */
    lowercase: z.boolean().optional(),
    cache_dir: z.string().min(1).default('.paratrain-cache'),
    /** Share held out for evaluation: whole documents, or the text's last share when there are few; 0 = no evaluation. */
    heldout_fraction: z.number().gte(0).lt(0.5).default(0.02),
    mask_prob: z.number().gt(0).lt(1).default(0.15),
    /** Masked-LM families: select whole words (WordPiece "##" pieces, BPE tokens without "Ġ", join the token before). */
    whole_word_mask: z.boolean().default(false),
    /** Sentence-pair task of the masked-LM families: BERT nsp, ALBERT sop, RoBERTa and ELECTRA none (the default per family). */
    pair_task: z.enum(['nsp', 'sop', 'none']).optional(),
    /** How masked-LM samples are cut: sentence pairs ([CLS] A [SEP] B [SEP]) or RoBERTa's full sentences (RoBERTa's default). */
    packing: z.enum(['sentence-pairs', 'full-sentences']).optional(),
    /** Use only the first N documents (0 = all); for quick runs and tests. */
    max_documents: nonNegativeInt.default(0),
  })
  .strict();

export const configSchema = z
  .object({
    model: modelSchema,
    train: trainSchema,
    optimizer: optimizerSchema.default(optimizerSchema.parse({})),
    parallel: z
      .object({
        /** Tensor-parallel size (Megatron): consecutive ranks of a node split every layer. */
        tensor: sizeUpTo(1024).default(1),
        /** Data-parallel gradient all-reduce bucket size in MB (fp32). */
        bucket_mb: z.number().positive().max(4096, { error: 'at most 4096 (MB per all-reduce bucket)' }).default(8),
        /** Bound on every data-plane wait; a collective that waits longer fails the job. */
        comm_timeout_s: z.number().positive().default(300),
        /**
         * The data plane: libzmq rings (any device; the CUDA engine stages through host memory), or
         * NCCL between GPUs (device: cuda).
         */
        comm: z.enum(['zmq', 'nccl']).default('zmq'),
      })
      .strict()
      .default({ tensor: 1, bucket_mb: 8, comm_timeout_s: 300, comm: 'zmq' }),
    checkpoint: z
      .object({
        /** Save every N steps (0 = only at the end). */
        every: nonNegativeInt.default(0),
        /** Also save when this many minutes have passed since the last save (0 = off). */
        every_minutes: z.number().nonnegative().default(0),
        /** Keep the newest N committed checkpoints (at least 2). */
        keep: z.number().int().min(2).default(3),
        /** Write shards in the background from a host copy while training goes on (one save in flight). */
        async: z.boolean().default(false),
        /** Fine-tuning: also keep the checkpoint with the best dev value of this metric (e.g. accuracy, f1, exact_match). */
        keep_best: z.string().min(1).optional(),
      })
      .strict()
      .default({ every: 0, every_minutes: 0, keep: 3, async: false }),
    run: z
      .object({ dir: z.string().min(1).default('runs/default') })
      .strict()
      .default({ dir: 'runs/default' }),
    data: dataSchema.default(dataSchema.parse({})),
    task: taskSchema.default(taskSchema.parse({})),
    /** Where the engine runs: the CPU build, or the CUDA build (which must load; never a silent fallback). */
    device: z.enum(['cpu', 'cuda']).default('cpu'),
    /**
     * Compute precision: fp32, or bf16 / fp16 with fp32 master weights and optimizer state (fp16 with
     * dynamic loss scaling). The CPU engine computes in fp32 only.
     */
    precision: z.enum(['fp32', 'bf16', 'fp16']).default('fp32'),
    loss_scale: lossScaleSchema.default(lossScaleSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
