/**
 * `quantscope inspect FILE [--json]`: what is in a model file (format,
 * size, parameters, bytes per dtype) and its tensor table, without reading
 * any tensor data.
 */
import { CliCommand, ParsedArgs } from './command';
import { EXIT } from './exitCodes';
import { CliIO, jsonText } from './io';
import { ModelFile, TensorInfo } from '../formats/types';
import { openModel } from '../formats/index';

export interface InspectSummary {
  path: string;
  format: string;
  formatVersion: string;
  files: string[];
  sizeOnDisk: number;
  tensors: number;
  parameters: number;
  bytesByDtype: Record<string, number>;
  paramsByDtype: Record<string, number>;
}

export function summarize(m: ModelFile): InspectSummary {
  const bytesByDtype: Record<string, number> = {};
  const paramsByDtype: Record<string, number> = {};
  let parameters = 0;
  for (const t of m.tensors) {
    parameters += t.numel;
    bytesByDtype[t.dtype] = (bytesByDtype[t.dtype] ?? 0) + t.byteLength;
    paramsByDtype[t.dtype] = (paramsByDtype[t.dtype] ?? 0) + t.numel;
  }
  return {
    path: m.path, format: m.format, formatVersion: m.formatVersion, files: m.files, sizeOnDisk: m.sizeOnDisk,
    tensors: m.tensors.length, parameters, bytesByDtype, paramsByDtype,
  };
}

function layerLabel(t: TensorInfo): string {
  const l = t.layer;
  const parts: string[] = [];
  if (l.block !== undefined) parts.push(`block ${l.block}`);
  if (l.role) parts.push(l.role);
  if (l.opType) parts.push(l.opType + (l.layerName ? ` ${l.layerName}` : ''));
  else if (l.layerName && l.block === undefined) parts.push(l.layerName);
  if (l.consumers.length > 1) parts.push(`(+${l.consumers.length - 1} more)`);
  return parts.join(' ');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

export function renderText(m: ModelFile): string {
  const s = summarize(m);
  const lines: string[] = [];
  lines.push(`file        ${s.path}`);
  if (s.files.length > 1) lines.push(`files       ${s.files.length} (${s.files.slice(1).map((f) => f.split(/[\\/]/).pop()).join(', ')})`);
  lines.push(`format      ${s.format} (${s.formatVersion})`);
  lines.push(`size        ${formatBytes(s.sizeOnDisk)} (${s.sizeOnDisk} bytes)`);
  lines.push(`tensors     ${s.tensors}`);
  lines.push(`parameters  ${s.parameters.toLocaleString('en-US')}`);
  for (const d of Object.keys(s.bytesByDtype).sort()) {
    lines.push(`  ${d.padEnd(14)} ${s.paramsByDtype[d].toLocaleString('en-US').padStart(16)} params ${formatBytes(s.bytesByDtype[d]).padStart(11)}`);
  }
  if (m.graph) lines.push(`graph       ${m.graph.nodes.length} nodes, opsets ${m.graph.opsetImports.map((o) => `${o.domain || 'ai.onnx'}:${o.version}`).join(', ')}`);
  lines.push('');
  const rows = m.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, t.numel.toLocaleString('en-US'), formatBytes(t.byteLength), layerLabel(t)]);
  const head = ['name', 'dtype', 'shape', 'params', 'bytes', 'layer'];
  const widths = head.map((h, i) => Math.min(60, Math.max(h.length, ...rows.map((r) => r[i].length))));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 3 || i === 4 ? c.padStart(widths[i]) : i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  lines.push(fmt(head));
  for (const r of rows) lines.push(fmt(r));
  return lines.join('\n');
}

export const INSPECT_SCHEMA = 'quantscope/inspect/v1';

export function renderJson(m: ModelFile): string {
  const tensors = m.tensors.map((t) => ({
    name: t.name, dtype: t.dtype, shape: t.shape, numel: t.numel, byteLength: t.byteLength, source: t.source,
    location: t.location.kind === 'disk' ? t.location : { kind: 'inline', length: t.location.bytes.byteLength },
    layer: t.layer,
  }));
  return jsonText(INSPECT_SCHEMA, { ...summarize(m), metadata: m.metadata, tensors, graph: m.graph }, 2);
}

export const command: CliCommand = {
  name: 'inspect',
  summary: 'print a model file\'s summary and tensor table (ONNX, safetensors, GGUF)',
  synopsis: 'FILE [--json]',
  description: 'Prints format, size, parameter count, bytes by dtype and the tensor table, without reading any tensor data.',
  options: [{ name: 'json', help: 'print the summary, metadata, tensors and graph as one JSON document' }],
  positionals: { min: 1, max: 1 },
  jsonSchema: INSPECT_SCHEMA,
  async run(args: ParsedArgs, io: CliIO): Promise<number> {
    const m = openModel(args.positionals[0]);
    try {
      if (args.options.json) await io.out(`${renderJson(m)}\n`);
      else await io.line(renderText(m));
    } finally {
      m.close();
    }
    return EXIT.ok;
  },
};
