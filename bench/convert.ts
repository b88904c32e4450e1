/**
 * `npm run bench -- convert --json`: the conversion figures of both sides in
 * one run (ONNX: convert_onnx_int4_GBps, convert_ppocr_rec_qdq_s; GGUF:
 * convert_gguf_q4_k_m_7b_s against llamacpp_q4_k_m_7b_s on the same file;
 * HF checkpoint: convert_st_to_gguf_q4_k_m_7b_s against llamacpp_f16_q4_k_m_7b_s).
 * `convert-onnx` and `convert-gguf` run one side alone.
 */
export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const onnx = await (await import('./convert-onnx.js')).run(argv);
  const gguf = await (await import('./convert-gguf.js')).run(argv);
  const hf = await (await import('./convert-hf-gguf.js')).run(argv);
  return { ...onnx, ...gguf, ...hf };
}
