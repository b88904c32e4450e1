/**
 * The quantization engine, re-exported in one place for the analysis,
 * sensitivity, conversion and CLI code. Pure TypeScript, no `vscode`.
 */

// ---- formats, granularity, calibration, round-to-nearest, packing, metrics, mixed precision
export * from './numberFormats';
export * from './granularity';
export * from './calibrators';
export * from './rtn';
export * from './packing';
export * from './metrics';
export * from './mixedPrecision';
export * from './configs';
export { wasmAvailable } from '../kernels/rtnKernels';

// ---- algorithms (GPTQ, AWQ, SmoothQuant, outlier-aware, bias correction) and GGUF block encoders
// (src/quant/algorithms/**, src/quant/ggml/**: exports are added here by their owner)
export * from './algorithms/gptq';
export * from './algorithms/awq';
export * from './algorithms/smoothquant';
export * from './algorithms/outlierDecomposition';
export * from './algorithms/biasCorrection';
export { NotPositiveDefiniteError, choleskyLower, upperCholeskyOfInverse, gram, outputErrorFromGram } from './algorithms/linalg';
export { rtnQuantize as gridRtnQuantize, type IntGridConfig, type GridQuantized } from './algorithms/intGrid';
export * from '../formats/gguf/ggmlTypes';
export * from './ggml/quantize';
export * from '../formats/gguf/dequant';
