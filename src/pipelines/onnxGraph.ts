/**
 * Name resolution over an editable ONNX model: which tensors are constant
 * weights (initializers and Constant-node values, in every graph and
 * subgraph), and which nodes consume each of them. Subgraphs see the names
 * of the graphs around them, so a weight defined in the main graph may be
 * consumed inside an If or Loop body.
 */
import { EditableOnnx, GraphScope, NodeMsg, TensorMsg, attrInt, int64ToNumber } from '../formats/onnx/writer';
import { ONNX_DTYPES } from '../formats/dtypes';
import type { ScalarDType } from '../formats/types';

export interface WeightRef {
  /** `${graphPath}\0${name}`. */
  key: string;
  name: string;
  scope: GraphScope;
  tensor: TensorMsg;
  /** Set when the weight is a Constant node's value. */
  constNode?: NodeMsg;
  dtype: ScalarDType | undefined;
  dims: number[];
}

export interface Use {
  node: NodeMsg;
  scope: GraphScope;
  inputIndex: number;
}

export interface GraphIndex {
  weights: WeightRef[];
  uses: Map<string, Use[]>;
  /** Graph outputs that name a weight directly (such a weight is never removed). */
  outputRefs: Set<string>;
  /** Every name in use anywhere, for picking fresh names. */
  names: Set<string>;
  /** The main graph's default-domain opset. */
  opset: number;
}

export function indexGraph(ed: EditableOnnx): GraphIndex {
  const scopes = ed.graphs();
  const defined = new Map<GraphScope, Set<string>>();
  const weights: WeightRef[] = [];
  const names = new Set<string>();
  for (const s of scopes) {
    const d = new Set<string>();
    defined.set(s, d);
    for (const vi of s.graph.input ?? []) if (vi.name) { d.add(vi.name); names.add(vi.name); }
    for (const t of s.graph.initializer ?? []) {
      const name = t.name ?? '';
      d.add(name);
      names.add(name);
      weights.push(weightRef(name, s, t));
    }
    for (const n of s.graph.node ?? []) {
      if (n.name) names.add(n.name);
      for (const o of n.output ?? []) if (o) { d.add(o); names.add(o); }
      if (n.op_type === 'Constant' && !n.domain) {
        const v = (n.attribute ?? []).find((a) => a.name === 'value' && a.t);
        const out = (n.output ?? [])[0];
        if (v?.t && out) weights.push({ ...weightRef(out, s, v.t), constNode: n });
      }
    }
  }
  const resolve = (s: GraphScope | undefined, name: string): GraphScope | undefined => {
    for (let c = s; c; c = c.parent) if (defined.get(c)!.has(name)) return c;
    return undefined;
  };
  const uses = new Map<string, Use[]>();
  const outputRefs = new Set<string>();
  for (const s of scopes) {
    for (const n of s.graph.node ?? []) {
      (n.input ?? []).forEach((name, inputIndex) => {
        if (!name) return;
        const def = resolve(s, name);
        if (!def) return;
        const key = `${def.path}\0${name}`;
        let l = uses.get(key);
        if (!l) uses.set(key, (l = []));
        l.push({ node: n, scope: s, inputIndex });
      });
    }
    for (const o of s.graph.output ?? []) {
      const def = o.name ? resolve(s, o.name) : undefined;
      if (def) outputRefs.add(`${def.path}\0${o.name}`);
    }
  }
  const main = ed.model.opset_import?.find((o) => !o.domain || o.domain === 'ai.onnx');
  return { weights, uses, outputRefs, names, opset: main ? int64ToNumber(main.version) : 0 };
}

function weightRef(name: string, scope: GraphScope, t: TensorMsg): WeightRef {
  return {
    key: `${scope.path}\0${name}`, name, scope, tensor: t, dtype: ONNX_DTYPES[t.data_type ?? 0],
    dims: (t.dims ?? []).map(int64ToNumber),
  };
}

/** A name not used anywhere in the model (and reserved from now on). */
export function freshName(ix: GraphIndex, base: string): string {
  let n = base;
  for (let k = 1; ix.names.has(n); k++) n = `${base}_${k}`;
  ix.names.add(n);
  return n;
}

/** Gemm attributes that matter when its weight is rewritten. */
export function gemmForm(n: NodeMsg): { transA: number; transB: number; alpha: number; beta: number } {
  const f = (name: string, d: number): number => {
    const a = (n.attribute ?? []).find((x) => x.name === name);
    return a && typeof a.f === 'number' ? a.f : d;
  };
  return { transA: attrInt(n, 'transA', 0), transB: attrInt(n, 'transB', 0), alpha: f('alpha', 1), beta: f('beta', 1) };
}
