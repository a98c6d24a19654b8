// Imported first by cli.ts, before torch/system.ts reads T3D_MALLOC: `t3d serve` runs for days and gives freed
// memory back (glibc's defaults) unless T3D_MALLOC says otherwise; the other commands keep it for reuse.
if (process.argv[2] === 'serve') process.env.T3D_MALLOC ??= 'system';
