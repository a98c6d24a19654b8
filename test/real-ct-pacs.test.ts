// The real head CT through a PACS: written as a CT Image Storage series (stored values HU + 1024 under a −1024
// rescale intercept, as scanners store them), stored in a real Orthanc, found by QIDO-RS and fetched by WADO-RS with
// the calls `t3d index --dicomweb` makes, and read back: every voxel's HU, the spacing and the orientation survive.
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
const INTERCEPT = -1024;

before(async () => {
  if (skip) return;
  ct = readInvesalius();
  const [D, H, W] = ct.shape;
  const files = writeCtSeries(join(tmp, 'written'), {
    data: ct.data.map((v) => v - INTERCEPT),
    shape: [W, H, D],
    affine: ct.affine,
    rescaleSlope: 1,
    rescaleIntercept: INTERCEPT,
    patientId: 'real-head',
    seriesDescription: 'real head CT',
  });
  orthanc = await Orthanc.start(tmp);
  await orthanc.upload(files.map((f) => readFileSync(f)));
});
after(() => {
  orthanc?.process?.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

test(
  'the real head CT survives a round trip through Orthanc: HU voxel by voxel, spacing and orientation',
  { skip },
  async () => {
    const [D, H, W] = ct.shape;
    const series = await findSeries(orthanc!.dicomWeb);
    assert.equal(series.length, 1);
    assert.equal(series[0]!.description, 'real head CT');
    assert.equal(series[0]!.instances, D, 'QIDO-RS lists every slice');
    const { dir, close } = await downloadSeries(orthanc!.dicomWeb, series[0]!);
    try {
      const v = await readDicomVolume(dir, { modality: 'CT' });
      assert.deepEqual(v.shape, [W, H, D]);
      assert.deepEqual(v.rescale, { slope: 1, intercept: INTERCEPT });
      assert.equal(v.files.length, D);
      let worst = 0;
      for (let i = 0; i < ct.data.length; i++) worst = Math.max(worst, Math.abs(v.data[i]! - ct.data[i]!));
      assert.equal(worst, 0, `largest HU difference ${worst}`);
      // spacing and the voxel → RAS affine, to the 6 decimals the DICOM decimal strings are written with
      v.spacing.forEach((s, a) =>
        assert.ok(Math.abs(s - ct.spacing[a]!) < 1e-6, `spacing ${v.spacing} vs ${ct.spacing}`),
      );
      v.affine.forEach((row, r) =>
        row.forEach((x, c) => assert.ok(Math.abs(x - ct.affine[r]![c]!) < 1e-5, `affine ${JSON.stringify(v.affine)}`)),
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
  },
);
