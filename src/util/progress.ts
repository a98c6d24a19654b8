// Progress for long work: a redrawn bar on a terminal, a line every few seconds otherwise (logs, CI).
export class Progress {
  private readonly t0 = Date.now();
  private lastLine = 0;
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update(done: number, note = ''): void {
    const now = Date.now();
    const elapsed = (now - this.t0) / 1000;
    const rate = done / Math.max(elapsed, 1e-3);
    const eta = done > 0 ? (this.total - done) / rate : NaN;
    const pct = this.total > 0 ? (100 * done) / this.total : 100;
    const text =
      `${this.label} ${done}/${this.total} (${pct.toFixed(0)} %) ${rate.toFixed(1)}/s ` +
      `ETA ${fmtTime(eta)}${note ? `  ${note}` : ''}`;
    if (this.stream.isTTY) {
      const width = 24;
      const fill = Math.round((width * pct) / 100);
      this.stream.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${text}\x1b[K`);
      if (done >= this.total) this.stream.write('\n');
    } else if (now - this.lastLine >= 5000 || done >= this.total) {
      this.lastLine = now;
      this.stream.write(`${text}\n`);
    }
  }
}

export function fmtTime(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${s}s`;
}
