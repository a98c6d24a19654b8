// Geometry of the raw volumes the synthetic generator writes: a property of the generator, not of a
// preprocessing preset. Built-in presets have their own entry; any other preset gets a default derived from its
// grid, so a custom preset needs nothing synthetic in its file.
import { type Preset } from '../presets.js';

export interface SynthGeometry {
  /** rows = columns of generated slices */
  inPlane: number;
  fovMm: [number, number];
  sliceThicknessMm: [number, number];
  zExtentMm: [number, number];
}

/** Per built-in preset name: raw scans somewhat finer than the preset's grid, as real acquisitions are. */
export const BUILT_IN_GEOMETRY: Readonly<Record<string, SynthGeometry>> = {
  'cpu-96': { inPlane: 128, fovMm: [340, 400], sliceThicknessMm: [2.5, 5.0], zExtentMm: [300, 340] },
  'cpu-mr': { inPlane: 288, fovMm: [340, 400], sliceThicknessMm: [1.5, 2.5], zExtentMm: [300, 340] },
  'ct-rate-480': { inPlane: 512, fovMm: [300, 420], sliceThicknessMm: [1.0, 2.0], zExtentMm: [280, 360] },
  'ct-rate-480-mr': { inPlane: 512, fovMm: [300, 420], sliceThicknessMm: [1.0, 2.0], zExtentMm: [280, 360] },
  'demo-48': { inPlane: 64, fovMm: [340, 400], sliceThicknessMm: [5.0, 10.0], zExtentMm: [300, 340] },
  't3d-224': { inPlane: 256, fovMm: [320, 400], sliceThicknessMm: [1.5, 3.0], zExtentMm: [280, 340] },
  't3d-224-mr': { inPlane: 512, fovMm: [320, 400], sliceThicknessMm: [1.0, 1.5], zExtentMm: [280, 340] },
};

/**
 * The built-in entry for the preset's name; otherwise an adult chest (340–400 mm field of view, 300–340 mm of
 * z) on slices 1.25× the preset's larger in-plane size (rounded up to a multiple of 8, at least 16), 0.4–0.5× its
 * z spacing thick.
 */
export function synthGeometry(preset: Preset): SynthGeometry {
  const builtIn = BUILT_IN_GEOMETRY[preset.name];
  if (builtIn) return builtIn;
  const [, h, w] = preset.shape;
  const z = preset.spacing[2];
  return {
    inPlane: Math.max(16, 8 * Math.ceil((1.25 * Math.max(h, w)) / 8)),
    fovMm: [340, 400],
    sliceThicknessMm: [(z * 2) / 5, z / 2],
    zExtentMm: [300, 340],
  };
}
