// `t3d import <format> <folder> --out <run>`: a published model's released files → a run folder like a pre-training
// run's (docs/ARCHITECTURE.md §2, "Imported models"), so that every command that takes --checkpoint takes it. The one
// checkpoint holds config.json (format, architecture, resolved preset), the released model.safetensors unchanged
// (its sha256 is the publisher's) or converted from a .pt, tokenizer.json (none for an image-only model), and the
// manifest; the weights are loaded once before anything is
// written, so a folder that would not load is never created.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { globalShapeOf, loadPreset } from '../data/presets.js';
import { hashFile, tempName } from '../util/files.js';
import { commitFolder } from '../util/manifest.js';
import { checkpointName } from './checkpoint.js';
import { type ImportedConfig } from './config.js';
import { type ModelFormat, type ReleasedModel, modelFormat } from './formats/index.js';

export interface ImportOptions {
  format: string;
  /** the released model's folder */
  folder: string;
  /** the run folder to create (must not exist, or be empty) */
  out: string;
  /** a preset name or file instead of the format's own (its global shape must be the model's input shape) */
  preset?: string;
  log?: (line: string) => void;
}

/** Imports a released model; returns the checkpoint folder written. */
export function importModel(o: ImportOptions): string {
  const format = modelFormat(o.format);
  if (!existsSync(o.folder)) throw new Error(`${o.folder}: no such folder`);
  if (existsSync(o.out) && readdirSync(o.out).length)
    throw new Error(`--out ${o.out}: exists and is not empty; give a new folder`);
  // beside the run: a converted weight file may be as large as the model
  mkdirSync(dirname(resolve(o.out)), { recursive: true });
  const scratch = mkdtempSync(join(dirname(resolve(o.out)), '.t3d-import-'));
  try {
    return write(format, o, format.read(o.folder, scratch));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function write(format: ModelFormat, o: ImportOptions, released: ReleasedModel): string {
  const preset = loadPreset(o.preset ?? released.preset);
  const input = globalShapeOf(preset);
  if (released.inputShape && input.join() !== released.inputShape.join())
    throw new Error(
      `preset '${preset.name}' gives the model [${input.join(', ')}] but ${format.name} was trained at ` +
        `[${released.inputShape.join(', ')}] (D, H, W)`,
    );
  format.load(released.architecture, released.weights).dispose(); // fails here, before anything is written
  const hashes = new Map([...new Set([...released.files, released.weights])].map((f) => [f, hashFile(f)]));
  const weights = hashes.get(released.weights)!;
  const config: ImportedConfig = {
    name: format.name,
    imported: {
      format: format.name,
      architecture: released.architecture,
      source: released.files.map((f) => ({ file: basename(f), sha256: hashes.get(f)!.sha256 })),
    },
    // maxTokens 0: an image-only model reads no reports
    data: { preset, maxTokens: released.text?.maxTokens ?? 0, trainSplit: 'train', valSplit: 'valid' },
  };
  const final = join(o.out, 'checkpoints', checkpointName(0));
  const tmp = tempName(final);
  const created = !existsSync(o.out);
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    released.text?.tokenizer.saveTokenizerJson(join(tmp, 'tokenizer.json'));
    copyFileSync(released.weights, join(tmp, 'model.safetensors'));
    const manifest = commitFolder(tmp, final); // hashes and fsyncs the copy
    const copied = manifest.files.find((f) => f.name === 'model.safetensors')!.sha256;
    if (copied !== weights.sha256)
      throw new Error(`${released.weights}: the copy's sha256 ${copied} differs from the original's ${weights.sha256}`);
  } catch (e) {
    rmSync(created ? o.out : join(o.out, 'checkpoints'), { recursive: true, force: true }); // it was empty
    throw e;
  }
  o.log?.(`${format.name} from ${o.folder} → ${final} (preset ${preset.name}, weights sha256 ${weights.sha256})`);
  return final;
}
