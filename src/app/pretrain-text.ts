// `t3d pretrain-text`: masked-language-model pre-training of the report encoder on the training reports, so that
// `t3d pretrain --set model.text.pretrained=<out>` starts alignment from a text encoder that knows the reports.
import { applyOverrides, loadConfig, validateConfig } from '../train/config.js';
import { runTextPretraining } from '../train/text-run.js';
import { parseOptions } from './args.js';

export async function runPretrainText(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    string: ['config', 'out', 'device'],
    number: ['steps', 'batch-size', 'lr', 'mask-prob'],
    list: ['set'],
  });
  const cfg = applyOverrides(loadConfig(o.config ?? 'cpu-96'), o.set ?? []);
  validateConfig(cfg);
  const { out, steps, lr, device } = o;
  const r = await runTextPretraining(cfg, {
    out,
    steps,
    lr,
    device,
    batchSize: o['batch-size'],
    maskProb: o['mask-prob'],
  });
  console.log(`pretrain-text: done at step ${r.step}; use it with --set model.text.pretrained=${r.outDir}`);
}
