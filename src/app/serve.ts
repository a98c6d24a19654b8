// `t3d serve`: the local web app (service/server.ts) over one checkpoint and its embedding index.
import { startServer } from '../service/server.js';
import { DEFAULT_DB } from '../service/vector-index.js';
import { UsageError, parseOptions, specificityRule } from './args.js';

export async function runServe(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    string: ['checkpoint', 'db', 'host', 'token', 'device'],
    number: ['port', 'max-upload-mb', 'max-kept-mb', 'specificity'],
    list: ['allow-host'],
  });
  if (!o.checkpoint) throw new UsageError('serve: --checkpoint <run-or-checkpoint> is required');
  const port = o.port ?? 8080;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536))
    throw new UsageError(`serve: --port must be an integer in 0..65535, got ${port}`);
  const mb = { upload: o['max-upload-mb'] ?? 512, kept: o['max-kept-mb'] ?? 4096 };
  for (const [k, v] of Object.entries(mb))
    if (!(v > 0)) throw new UsageError(`serve: --max-${k}-mb must be > 0, got ${v}`);
  const token = o.token ?? process.env.T3D_SERVE_TOKEN;
  const s = await startServer({
    checkpoint: o.checkpoint,
    db: o.db ?? DEFAULT_DB,
    host: o.host,
    port,
    token,
    allowedHosts: o['allow-host'],
    maxUploadBytes: mb.upload * 2 ** 20,
    maxKeptBytes: mb.kept * 2 ** 20,
    operatingPoint: specificityRule('serve', o.specificity),
    device: o.device,
  });
  console.log(`t3d serve: ${s.url}/${token ? '?token=<token>' : ''} (Ctrl-C stops)`);
  const stop = () => {
    void s.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
