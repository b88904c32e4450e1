/**
 * Images as calibration data for image models: PNG (pngjs) and JPEG
 * (jpeg-js) decoded to RGB, resized bilinearly to the model's input,
 * scaled to [0, 1], normalised by mean and std per channel, laid out NCHW
 * or NHWC. Every size is checked from the header before a pixel is
 * decoded, so a decompression bomb is refused, not inflated.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import * as jpeg from 'jpeg-js';
import { FormatError } from '../formats/types';
import type { InputSpec } from './calibData';

export interface ImageOptions {
  /** Target height and width; default: the input's fixed dims, else the first image's size (a symbolic width follows the height's scale). */
  size?: [number, number];
  /** Per-channel mean and std applied to values in [0, 1] (default 0 and 1); one value or one per channel. */
  mean?: number[];
  std?: number[];
  /** Layout of the model input (default: NHWC when the last axis is 1 or 3 and axis 1 is not, else NCHW). */
  layout?: 'nchw' | 'nhwc';
  /** Channel order the model expects (default rgb; Paddle and OpenCV models often want bgr). */
  channelOrder?: 'rgb' | 'bgr';
  /** Largest image accepted, in pixels (default 64 Mpx). */
  maxPixels?: number;
}

export const IMAGE_EXTENSIONS = /\.(png|jpe?g)$/i;
const DEFAULT_MAX_PIXELS = 64 * 1024 * 1024;

interface Rgb { width: number; height: number; /** RGBA, 8 bits per channel. */ data: Uint8Array }

/** Width and height from the header, before any pixel is decoded. */
export function imageHeaderSize(bytes: Uint8Array, file: string): { width: number; height: number; kind: 'png' | 'jpeg' } {
  if (bytes.length >= 24 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') throw new FormatError(file, 'PNG', 'the first chunk is not IHDR');
    return { width: dv.getUint32(16), height: dv.getUint32(20), kind: 'png' };
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    // Walk the markers to the first start-of-frame (SOF0..SOF15 except DHT, JPG, DAC).
    let o = 2;
    while (o + 9 <= bytes.length) {
      if (bytes[o] !== 0xff) throw new FormatError(file, 'JPEG', `no marker at byte ${o}`);
      const m = bytes[o + 1];
      if (m === 0xff) { o++; continue; }
      const len = (bytes[o + 2] << 8) | bytes[o + 3];
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
        return { height: (bytes[o + 5] << 8) | bytes[o + 6], width: (bytes[o + 7] << 8) | bytes[o + 8], kind: 'jpeg' };
      }
      if (len < 2) throw new FormatError(file, 'JPEG', `marker at byte ${o} has length ${len}`);
      o += 2 + len;
    }
    throw new FormatError(file, 'JPEG', 'no frame header (SOF) found');
  }
  throw new FormatError(file, 'image', 'not a PNG or JPEG file');
}

/** Decode to RGBA with every size checked first. */
export function decodeImage(bytes: Uint8Array, file: string, maxPixels = DEFAULT_MAX_PIXELS): Rgb {
  const head = imageHeaderSize(bytes, file);
  if (!head.width || !head.height) throw new FormatError(file, head.kind.toUpperCase(), `declares a ${head.width}×${head.height} image`);
  if (head.width * head.height > maxPixels) {
    throw new FormatError(file, head.kind.toUpperCase(), `declares ${head.width}×${head.height} pixels, over the ${maxPixels.toLocaleString('en-US')}-pixel limit`);
  }
  try {
    if (head.kind === 'png') {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipRescale: false });
      if (png.data.length !== png.width * png.height * 4) throw new Error(`decoded ${png.data.length} bytes for ${png.width}×${png.height}`);
      return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    }
    const maxMB = Math.ceil((maxPixels * 4 * 3) / (1024 * 1024));
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: maxPixels / 1e6, maxMemoryUsageInMB: maxMB });
    return { width: img.width, height: img.height, data: img.data };
  } catch (e) {
    if (e instanceof FormatError) throw e;
    // The decoders' own words ("have should not go down") say little: name what is wrong, keep theirs in brackets.
    throw new FormatError(file, head.kind.toUpperCase(), `corrupt, truncated or oversized image data (decoder: ${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Bilinear resize with half-pixel centres (as OpenCV's INTER_LINEAR and PIL without antialias), RGBA in, RGB float [0,1] out, HWC. */
export function resizeBilinear(img: Rgb, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w * 3);
  const sy = img.height / h, sx = img.width / w;
  for (let y = 0; y < h; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), img.height - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, img.height - 1), wy = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), img.width - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, img.width - 1), wx = fx - x0;
      const a = (y0 * img.width + x0) * 4, b = (y0 * img.width + x1) * 4, c = (y1 * img.width + x0) * 4, d = (y1 * img.width + x1) * 4;
      for (let ch = 0; ch < 3; ch++) {
        const top = img.data[a + ch] * (1 - wx) + img.data[b + ch] * wx;
        const bot = img.data[c + ch] * (1 - wx) + img.data[d + ch] * wx;
        out[(y * w + x) * 3 + ch] = (top * (1 - wy) + bot * wy) / 255;
      }
    }
  }
  return out;
}

function perChannel(v: number[] | undefined, def: number, channels: number, what: string): number[] {
  if (!v || !v.length) return Array(channels).fill(def);
  if (v.length === 1) return Array(channels).fill(v[0]);
  if (v.length !== channels) throw new Error(`--${what} has ${v.length} values; the model takes ${channels} channels`);
  return v;
}

/** Which image input, its layout, channels and target size, resolved once for a folder. */
export interface ImagePlan { input: InputSpec; layout: 'nchw' | 'nhwc'; channels: 1 | 3; h: number | undefined; w: number | undefined }

export function planImageInput(inputs: InputSpec[], opts: ImageOptions, fixedNames: Set<string>, where: string): ImagePlan {
  const cands = inputs.filter((i) => !fixedNames.has(i.name) && i.shape?.length === 4 && (i.dtype === undefined || i.dtype === 'f32'));
  if (cands.length !== 1) {
    throw new FormatError(where, 'inputs', `images feed one 4-D float input; the model has ${inputs.map((i) => `${i.name} [${(i.shape ?? []).join(',')}] ${i.dtype ?? ''}`).join('; ')}`);
  }
  const input = cands[0];
  const s = input.shape!;
  const isC = (d: number | string | undefined) => d === 1 || d === 3;
  const layout = opts.layout ?? (isC(s[3]) && !isC(s[1]) ? 'nhwc' : 'nchw');
  const cDim = layout === 'nchw' ? s[1] : s[3];
  const channels = cDim === 1 ? 1 : 3;
  if (typeof cDim === 'number' && cDim !== 1 && cDim !== 3) throw new FormatError(where, 'inputs', `input '${input.name}' has ${cDim} channels in ${layout.toUpperCase()}; images give 1 or 3 (set --layout)`);
  const [hd, wd] = layout === 'nchw' ? [s[2], s[3]] : [s[1], s[2]];
  for (const [i, d, what] of [[0, hd, 'height'], [1, wd, 'width']] as const) {
    if (opts.size && typeof d === 'number' && d > 0 && opts.size[i] !== d) {
      throw new FormatError(where, 'inputs', `input '${input.name}' is [${s.join(',')}]: --image-size ${opts.size.join('x')} in ${layout.toUpperCase()} contradicts its fixed ${what} ${d}`);
    }
  }
  const h = opts.size?.[0] ?? (typeof hd === 'number' && hd > 0 ? hd : undefined);
  const w = opts.size?.[1] ?? (typeof wd === 'number' && wd > 0 ? wd : undefined);
  return { input, layout, channels, h, w };
}

/** Resolve a still-open height or width from an image: keep its aspect ratio against the dimension that is known. */
export function resolveSize(plan: ImagePlan, img: { width: number; height: number }): [number, number] {
  if (plan.h && plan.w) return [plan.h, plan.w];
  if (plan.h) return [plan.h, Math.max(1, Math.round((img.width * plan.h) / img.height))];
  if (plan.w) return [Math.max(1, Math.round((img.height * plan.w) / img.width)), plan.w];
  return [img.height, img.width];
}

/** One image file → the model input tensor [1, C, H, W] or [1, H, W, C]. */
export function imageTensor(file: string, plan: ImagePlan, size: [number, number], opts: ImageOptions): Float32Array {
  const img = decodeImage(fs.readFileSync(file), file, opts.maxPixels);
  const [h, w] = size;
  const rgb = resizeBilinear(img, h, w);
  const C = plan.channels;
  const mean = perChannel(opts.mean, 0, C, 'mean');
  const std = perChannel(opts.std, 1, C, 'std');
  if (std.some((v) => !(v > 0))) throw new Error(`--std values must be positive, got ${std.join(',')}`);
  const order = opts.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  const out = new Float32Array(C * h * w);
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < C; c++) {
      // Gray: ITU-R BT.601 luma, as PIL's convert('L').
      const v = C === 1 ? 0.299 * rgb[p * 3] + 0.587 * rgb[p * 3 + 1] + 0.114 * rgb[p * 3 + 2] : rgb[p * 3 + order[c]];
      out[plan.layout === 'nchw' ? c * h * w + p : p * C + c] = (v - mean[c]) / std[c];
    }
  }
  return out;
}

export function isImageFile(file: string): boolean {
  return IMAGE_EXTENSIONS.test(path.basename(file));
}
