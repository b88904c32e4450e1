/**
 * Runs a GGUF in llama.cpp (CPU, in a child process) and returns the logits
 * of every position of a token list, and the KL divergence of one model's
 * next-token distributions from another's.
 */
import { callLlama, LlamaCallOptions } from './client';

export interface LlamaLogits {
  nVocab: number;
  /** Row-major [tokens.length][nVocab]. */
  logits: Float32Array;
}

export async function llamaEvaluate(
  file: string, tokens: number[], opts: { nThreads?: number; f32KvCache?: boolean } = {}, call: LlamaCallOptions = {},
): Promise<LlamaLogits> {
  if (!tokens.length) throw new RangeError('llamaEvaluate: no tokens');
  const r = await callLlama({ op: 'evaluate', file, tokens, nThreads: opts.nThreads ?? 1, f32KvCache: opts.f32KvCache ?? true }, call);
  return { nVocab: r.nVocab, logits: r.logits };
}

/** Mean over positions of KL(P_ref || P_test) of the softmaxed logits, in nats (float64). */
export function meanKlDivergence(ref: LlamaLogits, test: LlamaLogits): number {
  if (ref.nVocab !== test.nVocab || ref.logits.length !== test.logits.length) {
    throw new RangeError(`meanKlDivergence: shapes differ (${ref.nVocab}x${ref.logits.length / ref.nVocab} vs ${test.nVocab}x${test.logits.length / test.nVocab})`);
  }
  const v = ref.nVocab;
  const n = ref.logits.length / v;
  let total = 0;
  for (let p = 0; p < n; p++) {
    const a = ref.logits.subarray(p * v, (p + 1) * v);
    const b = test.logits.subarray(p * v, (p + 1) * v);
    const la = logSumExp(a), lb = logSumExp(b);
    let kl = 0;
    for (let i = 0; i < v; i++) {
      const lpa = a[i] - la;
      kl += Math.exp(lpa) * (lpa - (b[i] - lb));
    }
    total += kl;
  }
  return total / n;
}

function logSumExp(x: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - m);
  return m + Math.log(s);
}

/** Token ids llama.cpp gives each text (llama_tokenize with the model's vocabulary). */
export async function llamaTokenize(
  file: string, texts: string[], opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}, call: LlamaCallOptions = {},
): Promise<number[][]> {
  const r = await callLlama({ op: 'tokenize', file, texts, addSpecial: opts.addSpecial ?? false, parseSpecial: opts.parseSpecial ?? false }, call);
  return r.tokens;
}
