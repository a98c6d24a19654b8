/**
 * Why a file or series could not be read. `kind` lets a folder scan skip files that are simply not images
 * (a DICOMDIR, a report, a README) while still failing on images it cannot read.
 */
export type DicomErrorKind = 'not-dicom' | 'no-pixels' | 'unreadable' | 'invalid';

export class DicomError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly kind: DicomErrorKind = 'invalid',
  ) {
    super(`${path}: ${reason}`);
    this.name = 'DicomError';
  }
}
