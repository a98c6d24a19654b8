#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: libtorch when none is found (Debian libtorch-dev with OpenBLAS
# and Gloo's headers; needs root), npm packages, the native addon and the TypeScript build. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

have_libtorch() {
  [ -n "${LIBTORCH:-}" ] && return 0
  python3 -c 'import os, torch; assert os.path.isdir(os.path.join(os.path.dirname(torch.__file__), "include", "torch"))' 2>/dev/null && return 0
  [ -d /usr/include/torch/csrc ] && ls /usr/lib/*/libtorch.so >/dev/null 2>&1
}

# Debian's libtorch links the system BLAS: without OpenBLAS that is the reference BLAS, 13-40x slower per matrix
# product (libopenblas0-pthread is only a "recommends", which --no-install-recommends skips). Gloo's headers
# (torch.distributed's CPU backend) come in their own package too; libdeflate inflates .nii.gz about twice as fast
# as zlib (without it the build skips that addon and Node's zlib inflates).
DEBIAN_EXTRAS="libopenblas0-pthread libgloo-dev libdeflate-dev"
if ! have_libtorch; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: libtorch not found. Re-run as root (installs Debian's libtorch-dev) or set LIBTORCH=/path/to/libtorch" >&2
    exit 1
  fi
  echo "setup: installing Debian libtorch-dev"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libtorch-dev $DEBIAN_EXTRAS g++ make >/dev/null
elif [ -z "${LIBTORCH:-}" ] && [ -d /usr/include/torch/csrc ] && [ "$(id -u)" = 0 ] && ! dpkg -s $DEBIAN_EXTRAS >/dev/null 2>&1; then
  echo "setup: installing $DEBIAN_EXTRAS (fast BLAS, torch.distributed, fast gunzip)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $DEBIAN_EXTRAS >/dev/null
fi

npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
npm run --silent build
echo "setup: done ($(node dist/src/app/cli.js info | head -1 | tr -s ' '))"
