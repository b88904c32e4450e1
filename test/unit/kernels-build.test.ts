import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { STATS_SOURCE_SHA256, STATS_WASM_BASE64 } from '../../src/kernels/statsKernel.generated';
import { RTN_KERNELS_SOURCE_SHA256 } from '../../src/kernels/rtnKernels.generated';
import { GGML_KERNELS_SOURCE_SHA256 } from '../../src/kernels/ggmlKernels.generated';
import { SENS_KERNEL_SOURCE_SHA256 } from '../../src/kernels/sensKernel.generated';
import { HIST_KERNEL_SOURCE_SHA256 } from '../../src/kernels/histKernel.generated';

const DIR = path.resolve(__dirname, '../../../src/kernels');

describe('kernels: every embedded WebAssembly binary is built from the source beside it', () => {
  for (const [name, sha] of [['statsKernel', STATS_SOURCE_SHA256], ['rtnKernels', RTN_KERNELS_SOURCE_SHA256], ['ggmlKernels', GGML_KERNELS_SOURCE_SHA256], ['sensKernel', SENS_KERNEL_SOURCE_SHA256], ['histKernel', HIST_KERNEL_SOURCE_SHA256]] as const) {
    it(`${name}.as matches ${name}.generated.ts (else run node src/kernels/build.mjs ${name})`, () => {
      assert.equal(createHash('sha256').update(readFileSync(path.join(DIR, `${name}.as`))).digest('hex'), sha);
    });
  }
  it('the statistics kernel is a WebAssembly module', () => {
    // \0asm and version 1
    assert.deepEqual([...Buffer.from(STATS_WASM_BASE64, 'base64').subarray(0, 8)], [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
  });
});
