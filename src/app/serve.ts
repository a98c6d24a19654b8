// `t3d serve`: the local web app (service/server.ts) over one checkpoint and its embedding index.
import { startServer } from '../service/server.js';
import { DEFAULT_DB } from '../service/vector-index.js';
import { UsageError, parseOptions } from './args.js';

export const SERVE_USAGE = `t3d serve --checkpoint <run-or-checkpoint> [--db runs/index] [--host 127.0.0.1] [--port 8080] [--token <secret>] [--max-upload-mb 512] [--device cpu|cuda]

A local web app: open a case of the index (\`t3d index\`, same checkpoint) or upload a scan (.nii, .nii.gz, or a
.zip of one DICOM series), scroll its axial, coronal and sagittal slices, read each finding's probability and call,
search the index by text and follow similar cases to their reports. Uploads above --max-upload-mb are refused (413)
and kept only in memory-bounded temporary storage (the 16 most recent). With --token (or T3D_SERVE_TOKEN) every API
request needs "Authorization: Bearer <token>" (the page takes it from its URL: http://host:port/?token=<token>).
Listens on loopback unless --host says otherwise.

Examples:
  t3d serve --checkpoint runs/demo/t3d-s0
  t3d serve --checkpoint runs/demo/t3d-s0 --db runs/index --port 9000 --token "$(openssl rand -hex 16)"`;

export async function runServe(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    checkpoint: 'string', db: 'string', host: 'string', port: 'number', token: 'string', 'max-upload-mb': 'number',
    device: 'string',
  });
  if (!o.checkpoint) throw new UsageError('serve: --checkpoint <run-or-checkpoint> is required');
  const port = o.port ?? 8080;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new UsageError(`serve: --port must be an integer in 0..65535, got ${port}`);
  const mb = o['max-upload-mb'] ?? 512;
  if (!(mb > 0)) throw new UsageError(`serve: --max-upload-mb must be > 0, got ${mb}`);
  const token = o.token ?? process.env.T3D_SERVE_TOKEN;
  const s = await startServer({
    checkpoint: o.checkpoint, db: o.db ?? DEFAULT_DB, host: o.host, port, token, maxUploadBytes: mb * 2 ** 20, device: o.device,
  });
  console.log(`t3d serve: ${s.url}/${token ? '?token=<token>' : ''} (Ctrl-C stops)`);
  const stop = () => { void s.close().then(() => process.exit(0)); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
