// A real Orthanc for the PACS tests (Debian's orthanc + orthanc-dicomweb): started on loopback with a config written
// into a test folder, HTTP only, its DICOMweb plugin at /dicom-web. Without Orthanc installed the tests that need it
// are skipped (`skipOrthanc`), unless T3D_REQUIRE_ORTHANC=1.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './helpers.js';

const bin = ['/usr/sbin/Orthanc', '/usr/bin/Orthanc'].find((p) => existsSync(p));
const plugin = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
const available = !!bin && existsSync(plugin);
if (!available && process.env.T3D_REQUIRE_ORTHANC === '1')
  throw new Error(
    'T3D_REQUIRE_ORTHANC=1 but Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)',
  );
/** A test's `skip` option: false, or why Orthanc tests cannot run here. */
export const skipOrthanc: false | string = available ? false : 'Orthanc (orthanc, orthanc-dicomweb) is not installed';

export class Orthanc {
  process: ChildProcess | undefined;
  private constructor(
    private readonly config: string,
    /** its REST API, e.g. http://127.0.0.1:port */
    readonly rest: string,
  ) {}
  /** its DICOMweb root */
  get dicomWeb(): string {
    return `${this.rest}/dicom-web`;
  }

  /** Writes a config and a storage folder under `dir` and starts the server on a free loopback port. */
  static async start(dir: string): Promise<Orthanc> {
    const port = await freePort();
    const storage = join(dir, 'orthanc');
    mkdirSync(storage, { recursive: true });
    const config = join(dir, 'orthanc.json');
    writeFileSync(
      config,
      JSON.stringify({
        Name: 't3d-test',
        StorageDirectory: storage,
        IndexDirectory: storage,
        HttpPort: port,
        DicomServerEnabled: false,
        RemoteAccessAllowed: false,
        AuthenticationEnabled: false,
        Plugins: [plugin],
        DicomWeb: { Enable: true, Root: '/dicom-web/' },
      }),
    );
    const o = new Orthanc(config, `http://127.0.0.1:${port}`);
    await o.restart();
    return o;
  }

  /**
   * Starts the server (again after a kill: same port, same storage), waits until it answers, and checks that what
   * answers is this test's Orthanc (its configured name) with the DICOMweb plugin loaded, not another server that took
   * the port or an Orthanc without the plugin, whose tests would fail for the wrong reason.
   */
  async restart(): Promise<void> {
    this.process = spawn(bin!, [this.config], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      let system: Response | undefined;
      try {
        system = await fetch(`${this.rest}/system`);
      } catch {
        /* starting */
      }
      if (system?.ok) {
        assert.equal(
          ((await system.json()) as { Name?: string }).Name,
          't3d-test',
          `${this.rest}: not this test's Orthanc`,
        );
        const plugins = (await (await fetch(`${this.rest}/plugins`)).json()) as string[];
        assert.ok(
          plugins.includes('dicom-web'),
          `${this.rest}: the DICOMweb plugin is not loaded (${plugins.join(', ')})`,
        );
        return;
      }
      if (i > 100) throw new Error('Orthanc did not start within 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stores DICOM files (C-STORE's REST equivalent). */
  async upload(files: Uint8Array[]): Promise<void> {
    for (const [i, body] of files.entries()) {
      const res = await fetch(`${this.rest}/instances`, { method: 'POST', body: new Uint8Array(body) });
      if (!res.ok) throw new Error(`Orthanc: upload of file ${i + 1}: HTTP ${res.status}`);
    }
  }
}
