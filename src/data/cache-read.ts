// Reading one cached volume file, checked against the sha256 its cache entry recorded (no tensor engine here,
// so loader workers use it too).
import { hashFile } from '../util/files.js';
import { readSafetensorsRaw } from '../util/safetensors-file.js';

/** Raw tensors of a cache file; a file that no longer matches its entry's hash is an error naming it. */
export function readCachedTensors(
  file: string,
  sha256: string | undefined,
  names: string[],
): ReturnType<typeof readSafetensorsRaw> {
  if (sha256 && hashFile(file).sha256 !== sha256) {
    throw new Error(
      `${file}: does not match the sha256 in its cache entry (corrupted); rerun \`t3d preprocess\` to rebuild it`,
    );
  }
  return readSafetensorsRaw(file, names);
}
