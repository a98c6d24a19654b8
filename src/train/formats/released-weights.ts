// Loading a published model's weights under their released names: each format maps the released keys onto our
// modules' (with a layout conversion where the two differ) and names the released tensors its architecture does
// not use. Anything else — a released tensor nobody claims, a parameter of ours nothing fills, a shape that does
// not match — is an error naming the file and the keys, so a changed release never loads half right.
import * as torch from '../../torch/index.js';
import { type nn, type Tensor } from '../../torch/index.js';
import { readSafetensorsHeader } from '../../util/safetensors-file.js';

/** Where one released tensor goes: our key, and a conversion when the layouts differ. */
export interface KeyRule {
  to: string;
  convert?: (t: Tensor) => Tensor;
}
/** A released key → its rule; 'unused' for a tensor the architecture does not read; undefined for unknown. */
export type KeyMap = (released: string) => KeyRule | 'unused' | undefined;

/**
 * A CLIP model's key map (`fullKey`, onto our ClipModel's names), or, `visualOnly`, onto its vision encoder alone:
 * the `visual.` keys lose their prefix and everything else is unused.
 */
export const clipKeyMap =
  <A>(fullKey: (name: string, a: A) => KeyRule | 'unused' | undefined) =>
  (a: A, visualOnly: boolean): KeyMap =>
  (name) => {
    const rule = fullKey(name, a);
    if (!visualOnly || rule === undefined || rule === 'unused') return rule;
    return rule.to.startsWith('visual.') ? { ...rule, to: rule.to.slice('visual.'.length) } : 'unused';
  };

const listed = (keys: string[]) =>
  `[${keys.slice(0, 6).join(', ')}${keys.length > 6 ? `, … (${keys.length - 6} more)` : ''}]`;

/** The released tensors' names and shapes (header only). */
export function releasedShapes(file: string): Map<string, number[]> {
  return new Map(readSafetensorsHeader(file).entries.map((e) => [e.name, e.shape]));
}

/** Loads `file` (released names) into `module` through `map`; strict in both directions. */
export function loadReleased(module: nn.Module, file: string, map: KeyMap): void {
  const own = module.stateDict();
  const rules = new Map<string, KeyRule>();
  const unknown: string[] = [];
  for (const name of releasedShapes(file).keys()) {
    const rule = map(name);
    if (rule === undefined) unknown.push(name);
    else if (rule !== 'unused') rules.set(name, rule);
  }
  const filled = new Set([...rules.values()].map((r) => r.to));
  const missing = [...own.keys()].filter((k) => !filled.has(k));
  const foreign = [...rules].filter(([, r]) => !own.has(r.to)).map(([name]) => name);
  if (unknown.length || missing.length || foreign.length) {
    throw new Error(
      `${file}: weights do not match the architecture: unknown released keys ${listed([...unknown, ...foreign])}, ` +
        `parameters not in the file ${listed(missing)}`,
    );
  }
  const { tensors } = torch.loadSafetensors(file, { names: [...rules.keys()] });
  try {
    torch.tidy(() => {
      const state = new Map<string, Tensor>();
      for (const [name, rule] of rules) {
        const t = rule.convert ? rule.convert(tensors.get(name)!) : tensors.get(name)!;
        const want = own.get(rule.to)!.shape;
        if (t.shape.join() !== want.join())
          throw new Error(
            `${file}: '${name}' has shape [${tensors.get(name)!.shape.join(', ')}], which does not fit ` +
              `'${rule.to}' [${want.join(', ')}]`,
          );
        state.set(rule.to, t);
      }
      module.loadStateDict(state);
    });
  } finally {
    torch.dispose([...tensors.values()]);
  }
}
