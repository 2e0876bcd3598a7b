#!/usr/bin/env bash
# Builds lstm-nmt's release binaries nmt-train, nmt-eval, nmt-bundle and
# nmt-translate against libtorch 2.11.0 (the torch==2.11.0+cu130 PyPI wheel)
# instead of the 2.13.0 that tch/torch-sys 0.26 expects, for a machine that
# only has PyTorch 2.11.0+cu130 in its Python site-packages.
#
# Idempotent: download / unpack / torch-sys patch are skipped when done, the
# source snapshot keeps file mtimes, so a re-run after source changes only
# rebuilds the project's crates.
#
# Nothing under $SRC_REPO (/work/main) is written: cargo would rewrite the
# workspace Cargo.lock when torch-sys is [patch]ed, so the build runs in a
# snapshot of the working tree ($BASE/src: tracked + untracked-not-ignored
# files, i.e. uncommitted changes included), with its own target dir.
#
# Env knobs: SRC_REPO, BASE, BUILD_DIR, JOBS, TARGET_TORCH_LIB (extra RUNPATH
# baked into the binaries for the run machine; set it empty to leave it out).
set -euo pipefail

SRC_REPO=${SRC_REPO:-/work/main}
BASE=${BASE:-/work/torch211}
BUILD_DIR=${BUILD_DIR:-/work/build211}
JOBS=${JOBS:-2}
TARGET_TORCH_LIB=${TARGET_TORCH_LIB-/opt/torch/.venv/lib/python3.12/site-packages/torch/lib}
TORCH_VERSION=2.11.0
PIP_PLAT=(--only-binary=:all: --python-version 3.12
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64)
BINS=(nmt-train nmt-eval nmt-bundle nmt-translate)

log() { printf '\n==> %s\n' "$*"; }
mkdir -p "$BASE"

# --- 1. torch 2.11.0 wheel -> $BASE/torch/{lib,include} ----------------------
if [[ ! -f $BASE/torch/lib/libtorch_cpu.so || ! -f $BASE/torch/include/ATen/ATen.h ]]; then
    whl=$(ls "$BASE"/whl/torch-$TORCH_VERSION-cp312-*.whl 2>/dev/null | head -1 || true)
    if [[ -z $whl ]]; then
        log "downloading torch==$TORCH_VERSION wheel (default PyPI index)"
        python3 -m pip download --no-deps "${PIP_PLAT[@]}" "torch==$TORCH_VERSION" -d "$BASE/whl"
        whl=$(ls "$BASE"/whl/torch-$TORCH_VERSION-cp312-*.whl | head -1)
    fi
    log "unpacking $whl"
    rm -rf "$BASE/torch"
    unzip -q -o "$whl" 'torch/lib/*' 'torch/include/*' 'torch/share/*' 'torch/version.py' -d "$BASE"
fi
grep -q "__version__ = '$TORCH_VERSION" "$BASE/torch/version.py"

# --- 1b. CUDA runtime + CUPTI (build machine only) --------------------------
# The cu130 libtorch_cpu.so itself NEEDs libcudart.so.13 and libcupti.so.13,
# found through its RPATH $ORIGIN/../../nvidia/cu13/lib. On the run machine
# they come with the installed torch; here they are only needed so that the
# linker can resolve libtorch_cpu.so and the binaries can be smoke-tested.
# (Versions = what torch 2.11.0 pins through cuda-toolkit[cudart,cupti]==13.0.2.)
if [[ ! -f $BASE/nvidia/cu13/lib/libcudart.so.13 || ! -f $BASE/nvidia/cu13/lib/libcupti.so.13 ]]; then
    if ! ls "$BASE"/whl-cuda/nvidia_cuda_runtime-13.0.96-*.whl "$BASE"/whl-cuda/nvidia_cuda_cupti-13.0.85-*.whl >/dev/null 2>&1; then
        log "downloading nvidia-cuda-runtime / nvidia-cuda-cupti 13.0 wheels"
        python3 -m pip download --no-deps "${PIP_PLAT[@]}" \
            'nvidia-cuda-runtime==13.0.96.*' 'nvidia-cuda-cupti==13.0.85.*' -d "$BASE/whl-cuda"
    fi
    for w in "$BASE"/whl-cuda/nvidia_cuda_runtime-13.0.96-*.whl "$BASE"/whl-cuda/nvidia_cuda_cupti-13.0.85-*.whl; do
        unzip -q -o "$w" 'nvidia/cu13/lib/*.so*' -d "$BASE"
    done
fi

# --- 2. torch-sys copy, patched for 2.11 headers ----------------------------
TSYS_VER=$(awk '/^name = "torch-sys"$/ {getline; gsub(/"/, "", $3); print $3; exit}' "$SRC_REPO/Cargo.lock")
[[ -n $TSYS_VER ]] || { echo "torch-sys not in $SRC_REPO/Cargo.lock" >&2; exit 1; }
STAMP=$BASE/torch-sys/.patched-for-libtorch-$TORCH_VERSION
if [[ ! -f $STAMP || $(cat "$STAMP") != "$TSYS_VER" ]]; then
    CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
    reg=$(ls -d "$CARGO_HOME"/registry/src/*/torch-sys-"$TSYS_VER" 2>/dev/null | head -1 || true)
    if [[ -z $reg ]]; then
        log "cargo fetch (downloads only; --locked leaves Cargo.lock alone)"
        (cd "$SRC_REPO" && cargo fetch --locked)
        reg=$(ls -d "$CARGO_HOME"/registry/src/*/torch-sys-"$TSYS_VER" | head -1)
    fi
    log "copying $reg -> $BASE/torch-sys and stubbing wrappers missing in libtorch $TORCH_VERSION"
    rm -rf "$BASE/torch-sys"
    cp -r "$reg" "$BASE/torch-sys"
    chmod -R u+w "$BASE/torch-sys"
    python3 - "$BASE/torch-sys/libtch/torch_api_generated.cpp" "$TORCH_VERSION" <<'PY'
import re, sys
path, ver = sys.argv[1], sys.argv[2]
# Wrappers that do not compile against libtorch 2.11 headers (found with
# g++ -fsyntax-only): operators added after 2.11, plus one whose 2.11 schema
# lacks an argument. No other code references them (lstm-nmt calls none).
STUBS = [
    # added after 2.11
    "atg__flash_attention_forward_no_dropout_inplace",
    "atg__philox_key_fold_in",
    "atg__philox_key_split",
    "atg__philox_normal",
    "atg__philox_normal_",
    "atg__philox_normal_out",
    "atg__philox_uniform",
    "atg__philox_uniform_",
    "atg__philox_uniform_out",
    "atg__upsample_lanczos2d_aa",
    "atg__upsample_lanczos2d_aa_backward",
    "atg__upsample_lanczos2d_aa_backward_grad_input",
    "atg__upsample_lanczos2d_aa_out",
    "atg__upsample_lanczos2d_aa_vec",
    # exists in 2.11 but without the enable_gqa argument (MPS-only op)
    "atg__scaled_dot_product_attention_math_for_mps",
]
src = open(path).read()
for name in STUBS:
    pat = re.compile(r"(\nvoid " + re.escape(name) + r"\([^)]*\) \{\n  PROTECT\(\n)(.*?)(\n  \)\n\})", re.S)
    found = pat.findall(src)
    if len(found) != 1:
        sys.exit(f"{name}: expected 1 definition, found {len(found)}")
    msg = f'{name}: operator not available in libtorch {ver} (stubbed out for this build)'
    src = pat.sub(lambda m: m.group(1) + f'    throw std::runtime_error("{msg}");' + m.group(3), src)
open(path, "w").write(src)
print(f"stubbed {len(STUBS)} wrappers:", *STUBS, sep="\n  ")
PY
    echo "$TSYS_VER" > "$STAMP"
fi

# --- 3. snapshot of the working tree (keeps mtimes -> incremental builds) ---
log "snapshotting $SRC_REPO -> $BASE/src"
rm -rf "$BASE/src.new"
mkdir -p "$BASE/src.new"
if git -C "$SRC_REPO" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SRC_REPO" ls-files -z -co --exclude-standard \
        | (cd "$SRC_REPO" && tar --null --ignore-failed-read -T - -cf -) \
        | tar -xf - -C "$BASE/src.new"
else
    (cd "$SRC_REPO" && tar --exclude=./target --exclude=./.venv --exclude=./.git -cf - .) \
        | tar -xf - -C "$BASE/src.new"
fi
rm -rf "$BASE/src"
mv "$BASE/src.new" "$BASE/src"

# --- 4. build --------------------------------------------------------------
# LIBTORCH from the process env wins over .cargo/config.toml's [env] LIBTORCH
# (no `force`), and the snapshot has no .venv anyway. The crates' build.rs
# turn LIBTORCH into RUNPATH $BASE/torch/lib; TARGET_TORCH_LIB is added after
# it so the binaries also find the run machine's libtorch without
# LD_LIBRARY_PATH (a missing RUNPATH entry is simply skipped).
RUSTFLAGS_EXTRA=()
[[ -n $TARGET_TORCH_LIB ]] && RUSTFLAGS_EXTRA=(RUSTFLAGS="-C link-arg=-Wl,-rpath,$TARGET_TORCH_LIB")
log "cargo build (target dir $BUILD_DIR)"
cd "$BASE/src"
env CARGO_TARGET_DIR="$BUILD_DIR" \
    LIBTORCH="$BASE/torch" \
    LIBTORCH_BYPASS_VERSION_CHECK=1 \
    LIBTORCH_CXX11_ABI=1 \
    "${RUSTFLAGS_EXTRA[@]}" \
    nice -n 10 cargo build --release -j "$JOBS" \
        --config "patch.crates-io.torch-sys.path=\"$BASE/torch-sys\"" \
        -p model -p training -p nmt-eval --bins

# the torch-sys build must have used the 2.11 tree
grep -qx "cargo:libtorch_lib=$BASE/torch/lib" "$BUILD_DIR"/release/build/torch-sys-*/output

# --- 5. stripped copies -------------------------------------------------------
mkdir -p "$BUILD_DIR/stripped"
for b in "${BINS[@]}"; do
    strip -o "$BUILD_DIR/stripped/$b" "$BUILD_DIR/release/$b"
done

# --- 6. checks -----------------------------------------------------------------
log "linking / sizes"
for b in "${BINS[@]}"; do
    f=$BUILD_DIR/release/$b
    printf '%-14s %6s MiB  stripped %5s MiB\n' "$b" \
        $(( $(stat -c %s "$f") >> 20 )) $(( $(stat -c %s "$BUILD_DIR/stripped/$b") >> 20 ))
    readelf -d "$f" | grep -E 'NEEDED|RPATH|RUNPATH' | sed 's/^/    /'
    if readelf -d "$f" | grep NEEDED | grep -q '\[/'; then
        echo "ERROR: $b needs a library by absolute path" >&2; exit 1
    fi
done
log "smoke test (CPU, no GPU needed)"
LD_LIBRARY_PATH=$BASE/torch/lib "$BUILD_DIR/release/nmt-train" --help >/dev/null
LD_LIBRARY_PATH=$BASE/torch/lib "$BUILD_DIR/release/nmt-eval" translate --help >/dev/null
echo "OK: binaries in $BUILD_DIR/release, stripped copies in $BUILD_DIR/stripped"
