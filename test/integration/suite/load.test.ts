/**
 * Load and size, inside the real extension host: ten models opened at once
 * and closed return the extension to idle (no inspector held, no job left in
 * the pool, memory back near where it was), and a 70B-shaped sharded
 * safetensors checkpoint (sparse files: 140 GB that cost no disk) opens and
 * streams statistics while the extension host's memory stays flat.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { waitFor, workspaceFile } from './helpers';
import { suiteLog } from './log';

interface ResourceState { inspectors: number; pool: { workers: number; running: number; queued: number }; heapUsed: number; rss: number }
/** A full collection before each reading (V8's gc, exposed at run time; this suite runs in the extension host's own isolate), so what is measured is retained memory, not garbage V8 has not collected yet. */
const collect: () => void = (() => {
  try {
    (require('node:v8') as typeof import('node:v8')).setFlagsFromString('--expose-gc');
    return (require('node:vm') as typeof import('node:vm')).runInNewContext('gc') as () => void;
  } catch {
    return () => undefined;
  }
})();
const resources = async () => {
  collect();
  return (await vscode.commands.executeCommand('quantscope.getResourceState')) as ResourceState;
};
const analysis = async (uri: vscode.Uri) => (await vscode.commands.executeCommand('quantscope.inspector.analysisState', uri)) as { state: string; analysed: number } | undefined;
const MB = 1024 * 1024;

async function closeAll(): Promise<void> {
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
}

/** Writes a sharded safetensors checkpoint of LLaMA-2-70B's shapes in bf16: headers only, the data left as holes. */
function write70B(dir: string): { index: string; tensors: number; bytes: number } {
  const H = 8192, F = 28672, KV = 1024, V = 32000, L = 80;
  const list: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    list.push([`${p}self_attn.q_proj.weight`, [H, H]], [`${p}self_attn.k_proj.weight`, [KV, H]], [`${p}self_attn.v_proj.weight`, [KV, H]], [`${p}self_attn.o_proj.weight`, [H, H]],
      [`${p}mlp.gate_proj.weight`, [F, H]], [`${p}mlp.up_proj.weight`, [F, H]], [`${p}mlp.down_proj.weight`, [H, F]],
      [`${p}input_layernorm.weight`, [H]], [`${p}post_attention_layernorm.weight`, [H]]);
  }
  list.push(['model.norm.weight', [H]], ['lm_head.weight', [V, H]]);
  const shards: [string, number[]][][] = [];
  let cur: [string, number[]][] = [], curBytes = 0;
  for (const t of list) {
    const b = t[1].reduce((a, d) => a * d, 2);
    if (curBytes + b > 5e9 && cur.length) { shards.push(cur); cur = []; curBytes = 0; }
    cur.push(t); curBytes += b;
  }
  shards.push(cur);
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((sh, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [name, shape] of sh) {
      const b = shape.reduce((a, d) => a * d, 2);
      header[name] = { dtype: 'BF16', shape, data_offsets: [off, off + b] };
      off += b;
      weightMap[name] = file;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const fd = fs.openSync(path.join(dir, file), 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeSync(fd, len, 0, 8, 0);
    fs.writeSync(fd, Buffer.from(json), 0, json.length, 8);
    fs.ftruncateSync(fd, 8 + json.length + off);
    fs.closeSync(fd);
    total += off;
  });
  const index = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(index, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  return { index, tensors: list.length, bytes: total };
}

describe('load and size (extension host)', function () {
  this.timeout(600_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-load-'));
  after(async () => {
    await closeAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ten models opened at once, then closed: no inspector held, no job left in the pool, memory back near its baseline', async () => {
    const samples = ['ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx', 'ppocr/ch_PP-OCRv4_rec_infer.onnx', 'silero/silero_vad_v5.onnx', 'silero/silero_vad_legacy.onnx', 'fixtures/formats/v3.gguf'];
    // Ten distinct files (copies under new names: one inspector each).
    const uris: vscode.Uri[] = [];
    for (let i = 0; i < 10; i++) {
      const src = workspaceFile(samples[i % samples.length]).fsPath;
      const dst = path.join(dir, `m${i}-${path.basename(src)}`);
      fs.copyFileSync(src, dst);
      uris.push(vscode.Uri.file(dst));
    }
    // Baseline: after one model has been opened and closed (the pool and the bundles are loaded by then).
    await vscode.commands.executeCommand('vscode.openWith', uris[0], 'quantscope.modelEditor');
    await waitFor('the first analysis', async () => ((await analysis(uris[0]))?.state === 'complete' ? true : undefined), 120_000);
    await closeAll();
    await waitFor('no inspector open', async () => ((await resources()).inspectors === 0 ? true : undefined), 30_000);
    const base = await resources();

    // An inspector analyses once its view is shown: bring each to the front in turn and let it finish, all ten staying open.
    for (const u of uris) {
      await vscode.commands.executeCommand('vscode.openWith', u, 'quantscope.modelEditor', { preview: false });
      await waitFor(`the analysis of ${path.basename(u.fsPath)}`, async () => {
        const a = await analysis(u);
        return a && a.state !== 'idle' && a.state !== 'running' ? true : undefined;
      }, 120_000, 250);
    }
    const busy = await resources();
    assert.equal(busy.inspectors, 10, 'ten inspectors open');
    await closeAll();
    const idle = await waitFor('the extension to return to idle', async () => {
      const r = await resources();
      return r.inspectors === 0 && r.pool.running === 0 && r.pool.queued === 0 ? r : undefined;
    }, 60_000, 250);
    assert.ok(idle.pool.workers <= Math.max(base.pool.workers, os.availableParallelism()), `${idle.pool.workers} workers alive (baseline ${base.pool.workers})`);
    // Memory: no per-model residue. V8 collects lazily, so allow slack, not growth per model.
    let heap = idle.heapUsed;
    for (let i = 0; i < 20 && heap > base.heapUsed + 40 * MB; i++) {
      await new Promise((r) => setTimeout(r, 500));
      heap = (await resources()).heapUsed;
    }
    suiteLog(`      heap: baseline ${(base.heapUsed / MB).toFixed(0)} MB, ten open ${(busy.heapUsed / MB).toFixed(0)} MB, after closing ${(heap / MB).toFixed(0)} MB; workers ${idle.pool.workers}`);
    assert.ok(heap < base.heapUsed + 40 * MB, `heap ${(heap / MB).toFixed(0)} MB after closing ten models, baseline ${(base.heapUsed / MB).toFixed(0)} MB`);
  });

  it('a 70B-shaped sharded safetensors checkpoint (140 GB, sparse) opens and streams statistics with the extension host\'s memory flat', async function () {
    const sub = path.join(dir, 'llama-70b');
    fs.mkdirSync(sub);
    const ck = write70B(sub);
    assert.ok(ck.bytes > 130e9);
    const uri = vscode.Uri.file(ck.index);
    const t0 = Date.now();
    await vscode.commands.executeCommand('vscode.openWith', uri, 'quantscope.modelEditor');
    const summary = (await vscode.commands.executeCommand('quantscope.getModelSummary', uri)) as { tensorCount?: number; tensors?: number };
    const opened = (Date.now() - t0) / 1000;
    assert.ok(summary, 'the index opens');
    // Statistics start once the inspector's view has loaded: wait for the first tensor, then sample the extension host for 20 seconds.
    await waitFor('the first statistics of the 70B checkpoint', async () => ((await analysis(uri))?.analysed ?? 0) > 0 ? true : undefined, 180_000, 500);
    const samples: ResourceState[] = [];
    let first = -1, last = -1;
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 500));
      samples.push(await resources());
      const a = await analysis(uri);
      if (a) { if (first < 0) first = a.analysed; last = a.analysed; }
    }
    const rss = samples.map((s) => s.rss), heap = samples.map((s) => s.heapUsed);
    const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
    suiteLog(`      ${ck.tensors} tensors, ${(ck.bytes / 1e9).toFixed(0)} GB: opened in ${opened.toFixed(1)} s; ${first} → ${last} tensors analysed in 20 s; host rss ${(Math.min(...rss) / MB).toFixed(0)}–${(Math.max(...rss) / MB).toFixed(0)} MB, heap ${(Math.min(...heap) / MB).toFixed(0)}–${(Math.max(...heap) / MB).toFixed(0)} MB`);
    assert.ok(last > first, `statistics stream in (${first} → ${last} tensors in 20 s)`);
    assert.ok(spread(heap) < 64 * MB, `host heap moved by ${(spread(heap) / MB).toFixed(0)} MB while streaming`);
    assert.ok(spread(rss) < 256 * MB, `host rss moved by ${(spread(rss) / MB).toFixed(0)} MB while streaming`);
    // Closing it stops the work.
    await closeAll();
    await waitFor('the pool to go idle after closing', async () => {
      const r = await resources();
      return r.inspectors === 0 && r.pool.running === 0 && r.pool.queued === 0 ? true : undefined;
    }, 60_000, 250);
  });
});
