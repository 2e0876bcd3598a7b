#!/usr/bin/env bash
# Installs libtorch (the PyPI wheel torch==2.13.0, the version tch 0.26 is
# built against) into the project-local, git-ignored virtual environment
# .venv, and links .venv/site-packages so that .cargo/config.toml can name
# a fixed path. Idempotent: a stamp file makes the second run free.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
VENV=.venv
STAMP="$VENV/.torch-$TORCH_VERSION.stamp"

# ProcessGroupNCCL.hpp (the NCCL backend of distributed training) includes CUDA headers that
# the CUDA runtime wheel torch pulls in leaves to two small wheels: nvidia-cuda-crt (crt/,
# ~130 kB) and nvidia-cuda-cccl (nv/target and the rest of CCCL, a few MB). Install those of
# the runtime's CUDA version when they are missing; distributed/build.rs builds the NCCL
# backend when the headers are there (a CPU-only torch has no runtime wheel: nothing to do).
install_cuda_crt() {
  local runtime
  runtime=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("nvidia-cuda-runtime"))' 2>/dev/null) || return 0
  local include="$VENV/site-packages/nvidia/cu${runtime%%.*}/include"
  [[ -e "$include/crt/host_config.h" && -e "$include/nv/target" ]] && return 0
  local minor=${runtime%.*}
  echo "setup-libtorch: installing nvidia-cuda-crt and nvidia-cuda-cccl $minor.* (CUDA headers for the NCCL backend)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    "nvidia-cuda-crt==$minor.*" "nvidia-cuda-cccl==$minor.*" ||
    echo "setup-libtorch: CUDA headers not installed; distributed training is built without NCCL" >&2
}

if [[ -f "$STAMP" && -e "$VENV/site-packages/torch/lib/libtorch_cpu.so" ]]; then
  install_cuda_crt
  exit 0
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then
  echo "setup-libtorch: $PYTHON not found; install Python 3.10+ with venv and pip" >&2
  exit 1
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup-libtorch: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# The wheels (about 4.7 GB) are unpacked next to their downloads, so the
# install needs roughly twice that at its peak. Say so up front rather than
# leave pip to fail half-way with "No space left on device".
NEED_GB=${SETUP_LIBTORCH_NEED_GB:-12}
free_kb=$(df -Pk "$VENV" | awk 'NR == 2 { print $4 }')
tmp_free_kb=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $4 }')
for pair in "$VENV:$free_kb" "${TMPDIR:-/tmp}:$tmp_free_kb"; do
  dir=${pair%%:*} kb=${pair##*:}
  if [[ -n "$kb" && "$kb" -lt $((NEED_GB * 1024 * 1024)) ]]; then
    echo "setup-libtorch: only $((kb / 1024)) MiB free on the disk holding $dir;" \
      "installing torch==$TORCH_VERSION needs about $NEED_GB GiB (free space, or set TMPDIR to a larger disk)" >&2
    exit 1
  fi
done
echo "setup-libtorch: installing torch==$TORCH_VERSION into $VENV (about 4.7 GB, a few minutes)"
# --no-cache-dir: a second copy of the wheels in ~/.cache/pip would only
# cost disk; the stamp above makes reinstalls rare.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "torch==$TORCH_VERSION"

site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$site" "$VENV/site-packages"
test -e "$VENV/site-packages/torch/lib/libtorch_cpu.so" || {
  echo "setup-libtorch: torch installed but $VENV/site-packages/torch/lib/libtorch_cpu.so is missing" >&2
  exit 1
}
install_cuda_crt
touch "$STAMP"
echo "setup-libtorch: libtorch $TORCH_VERSION ready in $VENV/site-packages/torch"
