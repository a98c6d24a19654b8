// The real head CT through a PACS: written as CT Image Storage series — stored values HU + 1024 under a −1024 rescale
// intercept, as scanners store them, and once more under a slope of 2 (stored values rounded) — stored in a real
// Orthanc, found by QIDO-RS and fetched by WADO-RS with the calls `t3d index --dicomweb` makes, and read back: every
// voxel's HU (exactly, or within half the slope), the spacing and the orientation survive.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCtSeries } from '../src/io/dicom/write.js';
import { readDicomVolume } from '../src/io/dicom/volume.js';
import { downloadSeries, findSeries } from '../src/io/dicomweb.js';
import { readInvesalius, skipRealCt, type RealCt } from './real-ct.js';
import { Orthanc, skipOrthanc } from './orthanc.js';

const skip = skipRealCt || skipOrthanc;
const tmp = mkdtempSync(join(tmpdir(), 't3d-real-pacs-'));
let orthanc: Orthanc | undefined;
let ct: RealCt;
/** the series written, by description */
const RESCALES = new Map([
  ['real head CT', { slope: 1, intercept: -1024 }],
  ['real head CT, slope 2', { slope: 2, intercept: -2048 }],
]);

before(async () => {
  if (skip) return;
  ct = readInvesalius();
  const [D, H, W] = ct.shape;
  orthanc = await Orthanc.start(tmp);
  for (const [description, { slope, intercept }] of RESCALES) {
    const files = writeCtSeries(join(tmp, description), {
      data: ct.data.map((v) => Math.round((v - intercept) / slope)),
      shape: [W, H, D],
      affine: ct.affine,
      rescaleSlope: slope,
      rescaleIntercept: intercept,
      patientId: 'real-head',
      seriesDescription: description,
    });
    await orthanc.upload(files.map((f) => readFileSync(f)));
  }
});
after(() => {
  orthanc?.process?.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

test(
  'the real head CT survives a round trip through Orthanc: HU voxel by voxel, spacing and orientation',
  { skip },
  async (t) => {
    const [D, H, W] = ct.shape;
    const series = await findSeries(orthanc!.dicomWeb);
    assert.deepEqual(series.map((s) => s.description).sort(), [...RESCALES.keys()].sort());
    for (const s of series) {
      const rescale = RESCALES.get(s.description!)!;
      assert.equal(s.instances, D, 'QIDO-RS lists every slice');
      const { dir, close } = await downloadSeries(orthanc!.dicomWeb, s);
      try {
        const v = await readDicomVolume(dir, { modality: 'CT' });
        assert.deepEqual(v.shape, [W, H, D]);
        assert.deepEqual(v.rescale, rescale);
        assert.equal(v.files.length, D);
        let worst = 0;
        for (let i = 0; i < ct.data.length; i++) worst = Math.max(worst, Math.abs(v.data[i]! - ct.data[i]!));
        t.diagnostic(`${s.description}: largest HU difference ${worst}`);
        assert.ok(worst <= rescale.slope / 2, `${s.description}: largest HU difference ${worst}`);
        if (rescale.slope === 1) assert.equal(worst, 0);
        // spacing and the voxel → RAS affine, to the 6 decimals the DICOM decimal strings are written with
        v.spacing.forEach((x, a) => assert.ok(Math.abs(x - ct.spacing[a]!) < 1e-6, `spacing ${v.spacing}`));
        v.affine.forEach((row, r) =>
          row.forEach((x, c) => assert.ok(Math.abs(x - ct.affine[r]![c]!) < 1e-5, JSON.stringify(v.affine))),
        );
        // the orientation in words: columns run to the patient's left, rows to posterior, slices to superior (LPS)
        assert.deepEqual(
          v.direction.map((row) => row.map(Math.round)),
          [
            [-1, 0, 0],
            [0, -1, 0],
            [0, 0, 1],
          ],
        );
        assert.deepEqual(v.gaps, []);
      } finally {
        close();
      }
    }
  },
);
