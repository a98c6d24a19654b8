// `t3d convert`: DICOM series → NIfTI; `t3d import`: a published model's released files → a run folder.
import { usage } from './help.js';
import { convertDicomToNifti } from '../io/dicom.js';
import { importModel } from '../train/import-model.js';
import { UsageError, parseOptions } from './args.js';

export async function runConvert(args: string[]): Promise<void> {
  const [input, out, ...rest] = args;
  if (!input || !out || input.startsWith('--') || out.startsWith('--'))
    throw new Error(`convert needs an input and an output\n\nUsage: ${usage('convert')}`);
  const o = parseOptions(rest, { string: ['modality'], boolean: ['allow-gaps'] });
  const written = await convertDicomToNifti(input, out, {
    modality: o.modality,
    rejectGaps: !o['allow-gaps'],
  });
  for (const w of written) {
    const spacing = w.spacing.map((s) => +s.toFixed(4)).join(' x ');
    console.log(
      `wrote ${w.path}: ${w.shape.join(' x ')} ${w.dtype}, ${spacing} mm, ${w.modality ?? '?'} ` +
        `series ${w.seriesInstanceUID}${w.description ? ` "${w.description}"` : ''}`,
    );
    for (const warning of w.warnings) console.log(`  warning: ${warning}`);
  }
}

export function runImport([format = '', folder = '', ...rest]: string[]): void {
  const o = parseOptions(rest, { string: ['out', 'preset'] });
  if (!o.out || [format, folder].some((a) => !a || a.startsWith('-')))
    throw new UsageError('import: <format> <folder> --out <run> are required');
  importModel({ format, folder, out: o.out, preset: o.preset, log: (l) => console.log(`import: ${l}`) });
}
