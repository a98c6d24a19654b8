// RFC 4180 CSV, enough for CT-RATE's report/metadata/label tables (whose report fields hold commas, quotes and
// line breaks). The parser takes text in chunks so that a large CSV can be read from a stream.
import { createReadStream } from 'node:fs';

/** One record and the line (1-based) it starts on. */
export interface CsvRecord {
  fields: string[];
  line: number;
}

type State = 'fieldStart' | 'unquoted' | 'quoted' | 'afterQuote';

/** Incremental parser: `push` chunks, then `end`; each returns the records completed so far.
 *  Accepts CRLF, LF or CR line ends and a leading BOM; skips blank lines (a lone `""` is a record). */
export class CsvParser {
  private state: State = 'fieldStart';
  private field = '';
  private fields: string[] = [];
  private inRecord = false;
  private sawQuote = false;
  private skipLf = false;
  private atStart = true;
  private line = 1;
  private recordLine = 1;
  private quoteLine = 1;
  private out: CsvRecord[] = [];

  /** `source` names the input in errors (a file path, say). */
  constructor(readonly source = 'csv') {}

  push(chunk: string): CsvRecord[] {
    let i = 0;
    if (this.atStart && chunk.length > 0) {
      this.atStart = false;
      if (chunk.charCodeAt(0) === 0xfeff) i = 1;
    }
    while (i < chunk.length) {
      const c = chunk[i]!;
      if (this.skipLf) {
        this.skipLf = false;
        if (c === '\n') {
          i++;
          continue;
        }
      }
      switch (this.state) {
        case 'quoted': {
          const q = chunk.indexOf('"', i);
          const stop = q < 0 ? chunk.length : q;
          this.field += chunk.slice(i, stop);
          this.line += countNewlines(chunk, i, stop);
          if (q >= 0) this.state = 'afterQuote';
          i = stop + 1;
          continue;
        }
        case 'afterQuote':
          if (c === '"') {
            this.field += '"';
            this.state = 'quoted';
            i++;
            continue;
          }
          if (c !== ',' && c !== '\n' && c !== '\r') {
            throw new Error(`${this.source}: line ${this.line}: unexpected ${JSON.stringify(c)} after a closing quote`);
          }
          break;
        case 'fieldStart':
          if (!this.inRecord) {
            this.inRecord = true;
            this.recordLine = this.line;
          }
          if (c === '"') {
            this.state = 'quoted';
            this.sawQuote = true;
            this.quoteLine = this.line;
            i++;
            continue;
          }
          this.state = 'unquoted';
          break;
        case 'unquoted':
          break;
      }
      // Here the state is 'unquoted' or 'afterQuote' and c may end the field.
      if (c === ',') {
        this.endField();
        i++;
        continue;
      }
      if (c === '\n' || c === '\r') {
        this.endRecord();
        this.line++;
        this.skipLf = c === '\r';
        i++;
        continue;
      }
      // A bare quote inside an unquoted field is kept literally (e.g. 5" tube), as Python's csv does.
      let j = i;
      while (j < chunk.length && chunk[j] !== ',' && chunk[j] !== '\n' && chunk[j] !== '\r') j++;
      this.field += chunk.slice(i, j);
      i = j;
    }
    return this.take();
  }

  end(): CsvRecord[] {
    if (this.state === 'quoted')
      throw new Error(`${this.source}: unterminated quoted field starting at line ${this.quoteLine}`);
    if (this.inRecord) this.endRecord();
    return this.take();
  }

  private endField(): void {
    this.fields.push(this.field);
    this.field = '';
    this.state = 'fieldStart';
  }

  private endRecord(): void {
    this.endField();
    const blank = this.fields.length === 1 && this.fields[0] === '' && !this.sawQuote;
    if (!blank) this.out.push({ fields: this.fields, line: this.recordLine });
    this.fields = [];
    this.inRecord = false;
    this.sawQuote = false;
  }

  private take(): CsvRecord[] {
    const done = this.out;
    this.out = [];
    return done;
  }
}

function countNewlines(s: string, from: number, to: number): number {
  let n = 0;
  for (let k = s.indexOf('\n', from); k >= 0 && k < to; k = s.indexOf('\n', k + 1)) n++;
  return n;
}

export function parseCsv(text: string, source = 'csv'): string[][] {
  return parseRecords(text, source).map((r) => r.fields);
}

function parseRecords(text: string, source: string): CsvRecord[] {
  const p = new CsvParser(source);
  return [...p.push(text), ...p.end()];
}

/** Records as objects keyed by the header row; every record must have as many fields as the header. */
export function csvRows(text: string, source = 'csv'): Record<string, string>[] {
  const records = parseRecords(text, source);
  if (records.length === 0) return [];
  const toRow = rowMaker(records[0]!, source);
  return records.slice(1).map(toRow);
}

/** Streams a CSV file's rows (keyed by its header) without holding the whole file in memory. */
export async function* readCsvRows(path: string): AsyncGenerator<Record<string, string>> {
  const parser = new CsvParser(path);
  let toRow: ((r: CsvRecord) => Record<string, string>) | undefined;
  const rows = function* (records: CsvRecord[]) {
    for (const r of records) {
      if (toRow) yield toRow(r);
      else toRow = rowMaker(r, path);
    }
  };
  for await (const chunk of createReadStream(path, { encoding: 'utf8' })) yield* rows(parser.push(chunk as string));
  yield* rows(parser.end());
}

function rowMaker(header: CsvRecord, source: string): (r: CsvRecord) => Record<string, string> {
  const names = header.fields;
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new Error(`${source}: header names column "${dup}" twice`);
  return (r) => {
    if (r.fields.length !== names.length) {
      throw new Error(`${source}: line ${r.line} has ${r.fields.length} fields, the header has ${names.length}`);
    }
    const row: Record<string, string> = {};
    names.forEach((n, i) => {
      row[n] = r.fields[i]!;
    });
    return row;
  };
}

/** CSV text with a header line; fields holding a comma, quote or line break are quoted. null/undefined → ''. */
export function toCsv(rows: readonly Record<string, unknown>[], header: readonly string[], eol = '\n'): string {
  const line = (values: readonly unknown[]) => values.map(quote).join(',') + eol;
  return line(header) + rows.map((r) => line(header.map((h) => r[h]))).join('');
}

function quote(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}
