/**
 * The knapsack's plan against the uniform choice for the same size budget,
 * measured in ONNX Runtime on text the model never saw: on the trained tiny
 * transformer, at 6 bits per weight (between INT4 and INT8) the plan mixes
 * the configs per weight and must give a lower output error than the best
 * uniform config that fits the same budget (INT4 in blocks of 32, about 5
 * bits per weight; INT8 does not fit).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convert } from '../../src/pipelines/convert';
import { WorkerPool } from '../../src/jobs/pool';
import { windows } from './tinyTransformer';

const FIX = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'tiny-transformer');
const MODEL = path.join(FIX, 'tiny-transformer.onnx');

describe('knapsack plan vs uniform of the same size (tiny transformer, ONNX Runtime, held-out text)', function () {
  this.timeout(300_000);
  let dir: string;
  let pool: WorkerPool;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-knap-'));
    pool = new WorkerPool({ size: 2 });
  });
  after(async () => {
    await pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('at 6 bits per weight, measures a lower mean KL than the best uniform config within the budget', async () => {
    const heldout = [windows(path.join(FIX, 'heldout.txt'), 64)];
    const uniform = await convert({
      source: MODEL, output: path.join(dir, 'u.onnx'), target: 'onnx-int4', calibration: heldout, pool,
      plan: { schema: 'quantscope/plan/v1', target: 'onnx-int4', default: 'int4-g32', tensors: {} },
    });
    const uniformBytes = uniform.totals.bytesAfter;
    const mixed = await convert({
      source: MODEL, output: path.join(dir, 'm.onnx'), target: 'onnx-int4', calibration: heldout, pool,
      budget: { bitsPerWeight: 6 }, planOut: path.join(dir, 'm.plan.json'),
    });
    const kl = (r: typeof uniform) => r.verification.runtime!.outputs[0].meanKl!;
    assert.equal(uniform.verification.runtime!.data, 'calibration');
    const choices = new Set(Object.values(JSON.parse(fs.readFileSync(path.join(dir, 'm.plan.json'), 'utf8')).tensors));
    assert.ok(choices.size > 1, `the plan is uniform: ${[...choices].join(', ')}`);
    const params = mixed.tensors.reduce((a, t) => a + t.bytesBefore / 4, 0);
    assert.ok(uniformBytes * 8 <= 6 * params, 'uniform int4-g32 fits the budget');
    assert.ok(mixed.totals.bytesAfter * 8 <= 6.05 * params, `mixed ${mixed.totals.bytesAfter} bytes over 6 bits for ${params} weights`);
    assert.ok(kl(mixed) < kl(uniform), `knapsack KL ${kl(mixed)} is not below uniform int4-g32 KL ${kl(uniform)}`);
    console.log(`      held-out mean KL: uniform int4-g32 ${kl(uniform).toPrecision(4)} (${uniformBytes} B), knapsack ${kl(mixed).toPrecision(4)} (${mixed.totals.bytesAfter} B; ${[...choices].join(', ')})`);
  });
});
