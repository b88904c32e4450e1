/**
 * How far a model's outputs moved: accumulated over batches, per output.
 * Probability outputs (produced by Softmax) and logits (named so) get the
 * KL divergence of their last axis, KL(p_ref ‖ p_variant) averaged over
 * rows; every output gets SQNR, cosine and max |Δ|. `effect` is the one
 * number a ranking uses: mean KL for classifier outputs, else the noise-to-
 * signal power ratio Σ(Δ²)/Σ(ref²) (both add up roughly over independent
 * small perturbations, which the additivity check measures).
 */
import type { FeedTensor } from './calibData';
import type { PModel } from './graph';
import type { CompareOutputMetric as OutputMetrics, OutputKind } from '../shared/protocol/compare';

/** The shape is declared with the Compare view's protocol, which shows it; the runtime fills it. */
export type { OutputMetrics, OutputKind };

/** What each graph output is: Softmax output → probs; a name with "logit" → logits; else values. */
export function outputKinds(m: PModel): Record<string, OutputKind> {
  const g = m.graph!;
  const producer = new Map<string, string>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producer.set(o, n.op_type ?? '');
  const out: Record<string, OutputKind> = {};
  for (const o of g.output ?? []) {
    const name = o.name ?? '';
    out[name] = producer.get(name) === 'Softmax' ? 'probs' : /logit/i.test(name) ? 'logits' : 'values';
  }
  return out;
}

function softmaxRow(x: ArrayLike<number>, off: number, n: number, out: Float64Array): void {
  let mx = -Infinity;
  for (let i = 0; i < n; i++) mx = Math.max(mx, x[off + i]);
  let s = 0;
  for (let i = 0; i < n; i++) { out[i] = Math.exp(x[off + i] - mx); s += out[i]; }
  for (let i = 0; i < n; i++) out[i] /= s;
}

/** Accumulates one output's comparison over batches. */
export class OutputComparison {
  private sig = 0;
  private noise = 0;
  private dot = 0;
  private na = 0;
  private nb = 0;
  private maxAbs = 0;
  private klSum = 0;
  private rows = 0;
  private elements = 0;

  constructor(readonly output: string, readonly kind: OutputKind) {}

  add(ref: FeedTensor, got: FeedTensor): void {
    const a = ref.data as Float32Array;
    const b = got.data as Float32Array;
    if (!(a instanceof Float32Array) || !(b instanceof Float32Array)) throw new Error(`output ${this.output}: only float32 outputs are compared`);
    if (a.length !== b.length) throw new Error(`output ${this.output}: ${a.length} vs ${b.length} elements`);
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      const d = b[i] - x;
      this.sig += x * x;
      this.noise += d * d;
      this.dot += x * b[i];
      this.na += x * x;
      this.nb += b[i] * b[i];
      const ad = Math.abs(d);
      if (ad > this.maxAbs) this.maxAbs = ad;
    }
    this.elements += a.length;
    if (this.kind !== 'values' && ref.dims.length) {
      const n = ref.dims[ref.dims.length - 1];
      const rows = a.length / n;
      const p = new Float64Array(n);
      const q = new Float64Array(n);
      for (let r = 0; r < rows; r++) {
        if (this.kind === 'logits') { softmaxRow(a, r * n, n, p); softmaxRow(b, r * n, n, q); } else {
          for (let i = 0; i < n; i++) { p[i] = a[r * n + i]; q[i] = b[r * n + i]; }
        }
        let kl = 0;
        for (let i = 0; i < n; i++) if (p[i] > 0) kl += p[i] * Math.log(p[i] / Math.max(q[i], 1e-30));
        this.klSum += Math.max(0, kl);
      }
      this.rows += rows;
    }
  }

  result(): OutputMetrics {
    const sqnrDb = this.noise === 0 ? Infinity : 10 * Math.log10(this.sig / this.noise);
    const cosine = this.na === 0 || this.nb === 0 ? (this.na === this.nb ? 1 : 0) : this.dot / Math.sqrt(this.na * this.nb);
    const kl = this.kind === 'values' ? undefined : this.rows ? this.klSum / this.rows : 0;
    const nsr = this.sig === 0 ? (this.noise === 0 ? 0 : Infinity) : this.noise / this.sig;
    return { output: this.output, kind: this.kind, sqnrDb, cosine, maxAbs: this.maxAbs, kl, effect: kl ?? nsr, elements: this.elements };
  }
}

/** Compare two lists of batch outputs (same order), every output present in both. */
export function compareOutputs(
  ref: readonly Record<string, FeedTensor>[], got: readonly Record<string, FeedTensor>[], kinds: Record<string, OutputKind>,
): OutputMetrics[] {
  const names = Object.keys(ref[0] ?? {});
  const acc = names.map((n) => new OutputComparison(n, kinds[n] ?? 'values'));
  ref.forEach((r, i) => acc.forEach((c) => c.add(r[c.output], got[i][c.output])));
  return acc.map((c) => c.result());
}

/**
 * Next-token negative log-likelihood of a language model's logits
 * [batch, seq, vocab] against its input ids [batch, seq]: position t
 * predicts id t+1. Returns the sum (nats) and the number of predictions.
 */
export function nextTokenNll(logits: FeedTensor, ids: FeedTensor): { sum: number; count: number } {
  const [b, s, v] = logits.dims;
  if (logits.dims.length !== 3 || ids.dims[0] !== b || ids.dims[1] !== s) {
    throw new Error(`logits [${logits.dims.join(', ')}] do not match ids [${ids.dims.join(', ')}]`);
  }
  const x = logits.data as Float32Array;
  const id = (i: number) => Number((ids.data as ArrayLike<number | bigint>)[i]);
  let sum = 0;
  for (let r = 0; r < b; r++) {
    for (let t = 0; t + 1 < s; t++) {
      const off = (r * s + t) * v;
      let mx = -Infinity;
      for (let k = 0; k < v; k++) mx = Math.max(mx, x[off + k]);
      let z = 0;
      for (let k = 0; k < v; k++) z += Math.exp(x[off + k] - mx);
      sum += Math.log(z) + mx - x[off + id(r * s + t + 1)];
    }
  }
  return { sum, count: b * (s - 1) };
}
