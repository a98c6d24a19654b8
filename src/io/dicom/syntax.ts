// Transfer syntaxes: how the dataset is encoded and how its pixel data is compressed.

export type DatasetEncoding = 'implicit-le' | 'explicit-le' | 'explicit-be' | 'deflated-le';
/** 'native' and 'rle' are decoded here; the JPEG family goes to GDCM (see codecs.ts). */
export type PixelCodec = 'native' | 'rle' | 'jpeg-lossless' | 'jpeg-ls' | 'jpeg2000';

export interface TransferSyntax {
  uid: string;
  name: string;
  encoding: DatasetEncoding;
  codec: PixelCodec;
  lossy: boolean;
}

const table: [string, string, DatasetEncoding, PixelCodec, boolean][] = [
  ['1.2.840.10008.1.2', 'Implicit VR Little Endian', 'implicit-le', 'native', false],
  ['1.2.840.10008.1.2.1', 'Explicit VR Little Endian', 'explicit-le', 'native', false],
  ['1.2.840.10008.1.2.1.99', 'Deflated Explicit VR Little Endian', 'deflated-le', 'native', false],
  ['1.2.840.10008.1.2.2', 'Explicit VR Big Endian', 'explicit-be', 'native', false],
  ['1.2.840.10008.1.2.5', 'RLE Lossless', 'explicit-le', 'rle', false],
  ['1.2.840.10008.1.2.4.57', 'JPEG Lossless (Process 14)', 'explicit-le', 'jpeg-lossless', false],
  [
    '1.2.840.10008.1.2.4.70',
    'JPEG Lossless SV1 (Process 14, Selection Value 1)',
    'explicit-le',
    'jpeg-lossless',
    false,
  ],
  ['1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless', 'explicit-le', 'jpeg-ls', false],
  ['1.2.840.10008.1.2.4.81', 'JPEG-LS Near-Lossless', 'explicit-le', 'jpeg-ls', true],
  ['1.2.840.10008.1.2.4.90', 'JPEG 2000 Lossless', 'explicit-le', 'jpeg2000', false],
  ['1.2.840.10008.1.2.4.91', 'JPEG 2000', 'explicit-le', 'jpeg2000', true],
];
export const TRANSFER_SYNTAXES: ReadonlyMap<string, TransferSyntax> = new Map(
  table.map(([uid, name, encoding, codec, lossy]) => [uid, { uid, name, encoding, codec, lossy }]),
);

/** Names of syntaxes we recognise but do not decode, so the error says what the file is. */
const UNSUPPORTED: Record<string, string> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (lossy 8-bit)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (lossy 12-bit)',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile video',
  '1.2.840.10008.1.2.4.101': 'MPEG2 High Profile video',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 video',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD video',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 RPCL Lossless',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
};

export function transferSyntax(uid: string): TransferSyntax {
  const ts = TRANSFER_SYNTAXES.get(uid);
  if (ts) return ts;
  const known = UNSUPPORTED[uid];
  throw new Error(
    `unsupported transfer syntax ${uid}${known ? ` (${known})` : ''}; ` +
      `supported: ${[...TRANSFER_SYNTAXES.values()].map((t) => t.name).join(', ')}`,
  );
}
