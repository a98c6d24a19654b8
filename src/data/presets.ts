// Preprocessing presets are data (presets/*.json); this reads and validates them.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';

export interface Preset {
  name: string;
  description: string;
  /**
   * target voxel spacing (x, y, z) in mm; with geometry 'resize' the spacing of a typical scan after the resize,
   * which only synthetic data and the cache's NIfTI export read
   */
  spacing: [number, number, number];
  /** target shape (D, H, W) = (slices, rows, columns) of the cache */
  shape: [number, number, number];
  /**
   * 'spacing' (default): resampled to `spacing`, then centre-cropped or padded to `shape`. 'resize': the whole
   * (oriented) volume resampled to `shape` whatever its spacing, as published models trained on resized volumes
   * expect (docs/ARCHITECTURE.md §2).
   */
  geometry?: 'spacing' | 'resize';
  /**
   * 'scale' (default): the clipped HU divided by `scale`. 'minmax': the model input rescaled per volume from its own
   * minimum and maximum to [0, 1] (after the HU clip; `scale` and `padValue` then act before it). 'window': the
   * clipped `huWindow` mapped linearly onto [0, 1] (Merlin's [−1000, 1000] HU → [0, 1]; `padValue` is in HU/scale,
   * before the map).
   */
  intensity?: 'scale' | 'minmax' | 'window';
  /**
   * shape of the global view (default: shape). Smaller than shape = a multi-resolution preset: the global view is
   * the whole cached volume downsampled to this, and local views can be crops at the cache's own resolution.
   */
  globalShape?: [number, number, number];
  /** HU clip window */
  huWindow: [number, number];
  /** intensities are divided by this after clipping */
  scale: number;
  /** value used to pad (after scaling) */
  padValue: number;
  /**
   * the body region the model was trained on ('chest', 'head', 'abdomen'; absent: any), which the scan checks
   * compare a scan against (data/scan-checks.ts)
   */
  region?: string;
}

const presetDir = () => join(packageRoot(), 'presets');
export const presetNames = (): string[] =>
  readdirSync(presetDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();

/** A preset by name (presets/<name>.json) or by path to a JSON file. */
export function loadPreset(nameOrPath: string): Preset {
  const path = nameOrPath.endsWith('.json') ? nameOrPath : join(presetDir(), `${nameOrPath}.json`);
  if (!existsSync(path)) throw new Error(`preset '${nameOrPath}' not found (built-in: ${presetNames().join(', ')})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const p = raw as Preset;
  const nums = (v: unknown, n: number, positive = true) =>
    Array.isArray(v) &&
    v.length === n &&
    v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0));
  const problems: string[] = [];
  if (typeof p.name !== 'string') problems.push('name must be a string');
  if (!nums(p.spacing, 3)) problems.push('spacing must be 3 positive numbers (x, y, z mm)');
  if (!nums(p.shape, 3) || !p.shape.every(Number.isInteger))
    problems.push('shape must be 3 positive integers (D, H, W)');
  if (
    p.globalShape !== undefined &&
    !(nums(p.globalShape, 3) && p.globalShape.every((n, i) => Number.isInteger(n) && n <= (p.shape?.[i] ?? 0)))
  ) {
    problems.push('globalShape must be 3 positive integers (D, H, W), each at most shape');
  }
  if (!nums(p.huWindow, 2, false) || p.huWindow[0] >= p.huWindow[1])
    problems.push('huWindow must be [low, high] with low < high');
  if (!(typeof p.scale === 'number' && p.scale > 0)) problems.push('scale must be a positive number');
  if (typeof p.padValue !== 'number') problems.push('padValue must be a number');
  if (p.region !== undefined && typeof p.region !== 'string') problems.push('region must be a string');
  if (p.geometry !== undefined && p.geometry !== 'spacing' && p.geometry !== 'resize')
    problems.push(`geometry must be 'spacing' or 'resize'`);
  if (p.intensity !== undefined && !['scale', 'minmax', 'window'].includes(p.intensity))
    problems.push(`intensity must be 'scale', 'minmax' or 'window'`);
  if (problems.length) throw new Error(`${path}: invalid preset: ${problems.join('; ')}`);
  return p;
}

/** The global view's shape (D, H, W): the cache's shape unless the preset downsamples it. */
export const globalShapeOf = (p: Preset): [number, number, number] => p.globalShape ?? p.shape;

/** A preset given by name, path or as the object itself (a run's config stores the object it was trained with). */
export const resolvePreset = (p: string | Preset): Preset => (typeof p === 'string' ? loadPreset(p) : p);
