#!/usr/bin/env bash
# The CUDA check, for a machine with an NVIDIA GPU: builds the addon against a CUDA libtorch (LIBTORCH, or the torch
# of python3), runs the CUDA tests (test/cuda.test.ts: CPU-referenced float64 training, float16 loss scaling,
# bfloat16 autocast, flat memory), the training-step benchmark on the GPU next to its PyTorch-Python twins, and two
# short `t3d pretrain --device cuda` runs (float32, float16 autocast) on a small synthetic cache.
# Needs node ≥ 20 on PATH (npm_config_nodedir may point at its headers), the built TypeScript (dist/) and
# node_modules with node-addon-api, commander and fflate. Usage: bash scripts/gpu-check.sh [log folder]
# Every stage runs even when an earlier one fails; each writes its log into the folder; the exit code is the
# number of failed stages.
set -uo pipefail
out=${1:-runs/gpu-check}
mkdir -p "$out"
failed=0
stage() { # name, command...: runs the command with its output in <out>/<name>.log and on stdout
  local name=$1; shift
  echo "== $name"
  local t0=$SECONDS
  "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" = 0 ] || failed=$((failed + 1))
}
# `t3d pretrain` without the CLI, whose other commands load packages this check does not need (a file, not --eval:
# worker threads inherit node's flags)
echo "import { runPretrain } from '$PWD/dist/src/app/pretrain.js'; await runPretrain(process.argv.slice(2));" > "$out/pretrain.mjs"
pretrain() { # out, extra --set...
  local dir=$1; shift
  node "$out/pretrain.mjs" \
    --config demo --device cuda --steps 60 --out "$dir" --set "data.cache=$out/demo-cache" --set 'data.synth={"count":96,"seed":0}' \
    --set data.workers=4 "$@" && tail -n 2 "$dir/metrics.jsonl"
}

stage gpu nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
stage build node scripts/build-native.mjs
stage info node --input-type=module -e "import * as t from './dist/src/torch/index.js'; const b = t.buildInfo(); delete b.config; console.log(JSON.stringify({ ...b, memoryAllocated: t.cuda.isAvailable() ? t.cuda.memoryAllocated() : null }, null, 1));"
stage cuda-tests node --test dist/test/cuda.test.js
stage bench-train env DEVICE=cuda BENCH_REPS=${BENCH_REPS:-10} node dist/bench/train.js
stage pretrain-fp32 pretrain "$out/pretrain-fp32"
stage pretrain-fp16 pretrain "$out/pretrain-fp16" --set optim.amp=fp16
echo "gpu-check: $failed stage(s) failed; logs in $out"
exit "$failed"
