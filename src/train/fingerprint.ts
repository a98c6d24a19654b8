// The settings a run must keep across a resume, and the check a resumed run passes. Runs store them in one of
// three forms, kept as they were so that existing runs still resume: a hash (pre-training and text pre-training:
// trainer_state.json), the JSON text (segmentation, report generation) or the object itself (transfer).
import { createHash } from 'node:crypto';

export type Settings = Record<string, unknown>;

/** sha256 (16 hex digits) of the settings' JSON (key order as given). */
export function settingsHash(settings: Settings): string {
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 16);
}

/**
 * What differs between the settings a run was saved with (`saved`: its hash, JSON text or object) and `now`;
 * undefined when nothing does. Objects are compared field by field and the fields named.
 */
export function settingsDiff(saved: unknown, now: Settings): string | undefined {
  if (typeof saved === 'string' && !saved.startsWith('{')) {
    const hash = settingsHash(now);
    return saved === hash ? undefined : `fingerprint ${saved}, now ${hash}`;
  }
  const got = (typeof saved === 'string' ? JSON.parse(saved) : (saved ?? {})) as Settings;
  const differs = (k: string) => JSON.stringify(now[k]) !== JSON.stringify(got[k]);
  const diff = [...new Set([...Object.keys(now), ...Object.keys(got)])].filter(differs);
  if (!diff.length) return undefined;
  return diff.map((k) => `${k}: ${JSON.stringify(got[k])} there, ${JSON.stringify(now[k])} now`).join('; ');
}

/** Throws `refusal(diff)` when a run saved with `saved` settings must not continue with `now`. */
export function checkSettings(saved: unknown, now: Settings, refusal: (diff: string) => string): void {
  const diff = settingsDiff(saved, now);
  if (diff !== undefined) throw new Error(refusal(diff));
}
