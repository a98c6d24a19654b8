// Normal chest anatomy of one synthetic patient, painted in Hounsfield units.
import { Rng } from '../../util/rng.js';
import { capsule, ellipsoid, ellipticCylinder, type Grid, type Vec3 } from './raster.js';

/** Voxel labels written to the organ masks (0 = outside the body). */
export const ORGAN_LABELS = {
  body: 1,
  lungRight: 2,
  lungLeft: 3,
  heart: 4,
  aorta: 5,
  spine: 6,
  airway: 7,
  bone: 8,
  liver: 9,
} as const;
const L = ORGAN_LABELS;
export const LUNGS: ReadonlySet<number> = new Set([L.lungRight, L.lungLeft]);
const SOFT: ReadonlySet<number> = new Set([L.body]);

/** Patient geometry: everything a finding or a report needs to know about where things are. */
export interface Body {
  a: number;
  b: number; // body half-width (x) and half-depth (y), mm
  zTop: number;
  zBottom: number;
  lungCentre: [Vec3, Vec3]; // right, left
  lungRadii: Vec3;
  heartCentre: Vec3;
  heartRadii: Vec3;
  aortaPath: Vec3[];
  aortaRadius: number;
  carina: Vec3;
  hila: [Vec3, Vec3];
  spineY: number;
}

export function sampleBody(rng: Rng, zExtent: number): Body {
  const a = rng.uniform(135, 170),
    b = rng.uniform(90, 120);
  const zTop = zExtent / 2,
    zBottom = -zExtent / 2;
  const lungRadii: Vec3 = [a * rng.uniform(0.34, 0.4), b * rng.uniform(0.58, 0.68), zExtent * rng.uniform(0.36, 0.42)];
  const lungZ = zTop - lungRadii[2] * 0.85;
  const lx = a * rng.uniform(0.42, 0.48);
  const heartRadii: Vec3 = [rng.uniform(48, 58), rng.uniform(40, 48), rng.uniform(42, 52)];
  const heartCentre: Vec3 = [a * 0.14, -b * 0.22, lungZ - lungRadii[2] * 0.45];
  const aortaRadius = rng.uniform(11, 15);
  const ascTop: Vec3 = [6, -b * 0.2, lungZ + lungRadii[2] * 0.35];
  const arch: Vec3 = [22, b * 0.1, lungZ + lungRadii[2] * 0.5];
  const descTop: Vec3 = [28, b * 0.42, lungZ + lungRadii[2] * 0.35];
  return {
    a,
    b,
    zTop,
    zBottom,
    lungCentre: [
      [-lx, -b * 0.02, lungZ],
      [lx, -b * 0.02, lungZ],
    ],
    lungRadii,
    heartCentre,
    heartRadii,
    aortaPath: [
      [heartCentre[0] - 20, heartCentre[1] + 5, heartCentre[2] + 25],
      ascTop,
      arch,
      descTop,
      [26, b * 0.45, zBottom],
    ],
    aortaRadius,
    carina: [0, -b * 0.05, lungZ + lungRadii[2] * 0.25],
    hila: [
      [-lx * 0.55, 0, lungZ + lungRadii[2] * 0.05],
      [lx * 0.55, 0, lungZ + lungRadii[2] * 0.05],
    ],
    spineY: b * 0.62,
  };
}

export function paintAnatomy(g: Grid, body: Body, rng: Rng): void {
  const { a, b, zTop, zBottom } = body;
  // Body outline: skin/muscle with a subcutaneous fat layer.
  ellipticCylinder(g, 0, 0, a, b, zBottom, zTop, -95, { setLabel: L.body });
  const fat = rng.uniform(8, 25);
  ellipticCylinder(g, 0, 0, a - fat, b - fat * 0.8, zBottom, zTop, 45, { within: SOFT });
  // mediastinal / visceral fat
  ellipticCylinder(g, 0, 0, a - fat - 12, b - fat * 0.8 - 10, zBottom, zTop, -80, { within: SOFT });

  // Lungs, denser towards the back (gravity-dependent perfusion).
  body.lungCentre.forEach((c, side) => {
    ellipsoid(g, c, body.lungRadii, (r) => -860 + 25 * r, {
      within: SOFT,
      setLabel: side === 0 ? L.lungRight : L.lungLeft,
    });
  });
  g.forBox([-a, 0, zBottom], [a, b, zTop], (idx, _x, y) => {
    if (LUNGS.has(g.label[idx]!)) g.hu[idx]! += 60 * (y / b);
  });
  // Diaphragm domes: liver under the right lung, stomach under the left.
  const [rc, lc] = body.lungCentre;
  const domeZ = rc[2] - body.lungRadii[2] * 0.78;
  ellipsoid(g, [rc[0] * 0.8, 0, domeZ - 45], [a * 0.55, b * 0.75, 80], 55, { setLabel: L.liver });
  ellipsoid(g, [lc[0] * 0.9, -b * 0.1, domeZ - 35], [45, 40, 45], 30, { setLabel: L.body });
  ellipsoid(g, [lc[0] * 0.9, -b * 0.25, domeZ - 20], [22, 14, 12], -1000, { setLabel: L.body });

  // Heart and great vessels (non-contrast: blood ≈ 40 HU), pericardial fat first.
  const [hx, hy, hz] = body.heartCentre;
  const [hrx, hry, hrz] = body.heartRadii;
  ellipsoid(g, [hx, hy, hz], [hrx + 5, hry + 5, hrz + 5], -90, { setLabel: L.body });
  ellipsoid(g, [hx, hy, hz], [hrx, hry, hrz], 40, { setLabel: L.heart });
  for (let s = 0; s + 1 < body.aortaPath.length; s++) {
    capsule(g, body.aortaPath[s]!, body.aortaPath[s + 1]!, body.aortaRadius, 42, { setLabel: L.aorta });
  }
  // SVC
  capsule(g, [-8, -b * 0.18, hz + hrz * 0.6], [-10, -b * 0.25, zTop], body.aortaRadius * 0.9, 38, { setLabel: L.body });
  // pulmonary arteries
  capsule(g, [hx - 5, hy + 10, hz + 20], [body.hila[0][0], 0, body.hila[0][2]], 10, 40, { setLabel: L.body });
  capsule(g, [hx - 5, hy + 10, hz + 20], [body.hila[1][0], 0, body.hila[1][2]], 10, 40, { setLabel: L.body });

  paintSkeleton(g, body, rng);
  paintAirways(g, body, rng);
  paintVessels(g, body, rng);
}

function paintSkeleton(g: Grid, body: Body, rng: Rng): void {
  const { a, b, zTop, zBottom, spineY } = body;
  // Vertebral bodies (cancellous core, cortical rim) separated by discs; canal and spinous processes behind.
  const level = rng.uniform(24, 28);
  for (let z = zBottom - level; z < zTop + level; z += level) {
    ellipticCylinder(g, 0, spineY, 20, 17, z, z + level - 5, 650, { setLabel: L.spine });
    ellipticCylinder(g, 0, spineY, 16, 13, z, z + level - 5, 230, { setLabel: L.spine });
    ellipticCylinder(g, 0, spineY, 20, 17, z + level - 5, z + level, 85, { setLabel: L.body });
    capsule(g, [0, spineY + 24, z + 6], [0, spineY + 48, z - 6], 5, 600, { setLabel: L.spine });
  }
  ellipticCylinder(g, 0, spineY + 25, 8, 7, zBottom, zTop, 15, { setLabel: L.body });
  // Ribs: rings descending anteriorly, missing at the front where costal cartilage is.
  for (let z = zTop - 10; z > zBottom + 20; z -= level) {
    for (let side = -1; side <= 1; side += 2) {
      let prev: Vec3 | undefined;
      for (let deg = 18; deg <= 175; deg += 12) {
        const t = (deg * Math.PI) / 180;
        const p: Vec3 = [
          side * a * 0.86 * Math.sin(t),
          -b * 0.84 * Math.cos(t),
          z - (28 * (1 - Math.cos(t - Math.PI))) / 2 + 10,
        ];
        if (prev) capsule(g, prev, p, 4.5, 620, { setLabel: L.bone });
        prev = p;
      }
    }
  }
  g.forBox([-14, -b, zBottom + (zTop - zBottom) * 0.35], [14, -b * 0.78, zTop], (idx, _x, y) => {
    if (y > -b * 0.94) {
      g.hu[idx] = 380;
      g.label[idx] = L.bone;
    }
  }); // sternum
}

function paintAirways(g: Grid, body: Body, rng: Rng): void {
  const { carina, hila, zTop } = body;
  const top: Vec3 = [0, carina[1] - 8, zTop + 5];
  capsule(g, top, carina, 11, 20, { setLabel: L.body }); // tracheal wall
  capsule(g, top, carina, 8.5, -1000, { setLabel: L.airway });
  for (const h of hila) {
    capsule(g, carina, h, 8, 20, { setLabel: L.body });
    capsule(g, carina, h, 5.5, -1000, { setLabel: L.airway });
    branch(g, rng, h, [Math.sign(h[0]) * 0.7, 0.1, -0.6], 4, 3.5, -1000, L.airway, 1.2);
  }
}

/** Recursive branching tubes inside the lungs (airways or vessels), thinning with each generation. */
export function branch(
  g: Grid,
  rng: Rng,
  from: Vec3,
  dir: Vec3,
  depth: number,
  radius: number,
  hu: number,
  label: number | undefined,
  wall = 0,
): void {
  if (depth === 0 || radius < 0.8) return;
  const len = rng.uniform(25, 45) * (radius / 3 + 0.5);
  const n = Math.hypot(...dir) || 1;
  const to: Vec3 = [from[0] + (dir[0] / n) * len, from[1] + (dir[1] / n) * len, from[2] + (dir[2] / n) * len];
  if (wall > 0) capsule(g, from, to, radius + wall, 10, { within: LUNGS });
  capsule(g, from, to, radius, hu, { within: wall > 0 ? undefined : LUNGS, setLabel: label });
  for (let k = 0; k < 2; k++) {
    const jitter = (): number => rng.uniform(-0.7, 0.7);
    branch(
      g,
      rng,
      to,
      [dir[0] / n + jitter(), dir[1] / n + jitter(), dir[2] / n + jitter()],
      depth - 1,
      radius * 0.72,
      hu,
      label,
      wall * 0.7,
    );
  }
}

function paintVessels(g: Grid, body: Body, rng: Rng): void {
  for (const h of body.hila) {
    for (const dz of [0.8, 0, -0.8]) {
      const dir: Vec3 = [Math.sign(h[0]) * rng.uniform(0.4, 1), rng.uniform(-0.6, 0.6), dz];
      branch(g, rng, h, dir, 4, rng.uniform(2.8, 4), 35, undefined);
    }
  }
}
