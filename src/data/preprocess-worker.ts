// preprocess-worker.ts — one tokenizing thread of `paratrain preprocess`: it receives batches of
// documents and returns, per document, its token ids and the length of each of its sequences (the
// sentences when splitting, else the whole document), in the batch's order.
import { parentPort, workerData } from 'node:worker_threads';
import { splitSentences } from './sentences';
import { TextTokenizer } from './tokenizer';

export interface PreprocessWorkerData {
  tokenizerJson: string;
  splitSentences: boolean;
  /** Appended to each document's last sequence; -1 for none. */
  endOfDocumentId: number;
}

export interface TokenizeRequest {
  batch: number;
  texts: string[];
}

export interface TokenizeReply {
  batch: number;
  /** All tokens of the batch, document after document. */
  tokens: Int32Array;
  /** Per document, how many sequences it has; then the sequences' lengths, in order. */
  sequencesPerDocument: Int32Array;
  sequenceLengths: Int32Array;
}

/** Tokenizes one batch: documents without any token come back with no sequence. */
export async function tokenizeBatch(
  tokenizer: TextTokenizer,
  options: Omit<PreprocessWorkerData, 'tokenizerJson'>,
  request: TokenizeRequest,
): Promise<TokenizeReply> {
  const pieces: string[] = [];
  const piecesPerDocument: number[] = [];
  for (const text of request.texts) {
    const parts = options.splitSentences ? splitSentences(text) : [text];
    pieces.push(...parts);
    piecesPerDocument.push(parts.length);
  }
  const encoded = await tokenizer.encodeBatch(pieces);
  const lengths: number[] = [];
  const perDocument: number[] = [];
  const chunks: number[][] = [];
  let next = 0;
  for (const count of piecesPerDocument) {
    const sequences = encoded.slice(next, next + count).filter((ids) => ids.length > 0);
    next += count;
    if (sequences.length > 0 && options.endOfDocumentId >= 0)
      sequences[sequences.length - 1] = [...sequences[sequences.length - 1], options.endOfDocumentId];
    perDocument.push(sequences.length);
    for (const ids of sequences) {
      lengths.push(ids.length);
      chunks.push(ids);
    }
  }
  const tokens = new Int32Array(lengths.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const ids of chunks) {
    tokens.set(ids, at);
    at += ids.length;
  }
  return {
    batch: request.batch,
    tokens,
    sequencesPerDocument: Int32Array.from(perDocument),
    sequenceLengths: Int32Array.from(lengths),
  };
}

if (parentPort && workerData) {
  const data = workerData as PreprocessWorkerData;
  const tokenizer = TextTokenizer.fromJSON(data.tokenizerJson, 'preprocess');
  const port = parentPort;
  port.on('message', (request: TokenizeRequest) => {
    tokenizeBatch(tokenizer, data, request).then(
      (reply) =>
        port.postMessage(reply, [reply.tokens.buffer as ArrayBuffer, reply.sequenceLengths.buffer as ArrayBuffer]),
      (error: unknown) => port.postMessage({ batch: request.batch, error: (error as Error).message }),
    );
  });
}
