# lstm-nmt: translation server image (nmt-serve, nmt-translate, nmt-eval)
# with the shipped multi30k-de-en model.
#
#   docker build -t lstm-nmt .                        # CPU image (default target)
#   docker run -p 8080:8080 lstm-nmt
#   docker build -t lstm-nmt:cuda --target runtime-cuda .   # CUDA variant
#   docker run --gpus all -p 8080:8080 lstm-nmt:cuda
#
# Serve another bundle: mount it and point NMT_MODEL at it,
#   docker run -p 8080:8080 -v "$PWD/my-bundle:/models/my-bundle:ro" \
#     -e NMT_MODEL=/models/my-bundle lstm-nmt
# Every nmt-serve flag has an NMT_* environment variable (see README: Docker).
#
# Verified without a Docker engine by `make docker-smoke`
# (../shared/tools/container-smoke: buildah build + run + HTTP probes).

############################################################################
# Build stage: libtorch from the PyPI wheel, then the release binaries.
FROM rust:1.95-slim-bookworm AS build

# g++: torch-sys's C++ shim, tokenizers' suffix array; cmake + make: the vendored
# SentencePiece; python3-venv: pip, to fetch libtorch from PyPI.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make cmake pkg-config python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

# libtorch 2.13 (the version tch 0.26 binds) from the torch==2.13.0 wheel and
# its CUDA wheels, installed flat into /opt/libtorch so that libtorch's own
# RPATH ($ORIGIN/../../nvidia/...) finds the CUDA libraries. The binaries get
# /opt/libtorch/torch/lib as their rpath (see */build.rs), so the runtime
# images keep the same paths and need no LD_LIBRARY_PATH.
ENV LIBTORCH=/opt/libtorch/torch
ARG TORCH_VERSION=2.13.0
RUN --mount=type=cache,id=lstm-nmt-pip,target=/var/cache/pip \
    python3 -m venv /opt/pip \
 && /opt/pip/bin/pip install --disable-pip-version-check --quiet --cache-dir /var/cache/pip \
      --target /opt/libtorch "torch==${TORCH_VERSION}" \
 && test -f /opt/libtorch/torch/lib/libtorch_cpu.so

WORKDIR /src
# Only what the build reads, so that a new model bundle or a doc change does
# not invalidate the cached build.
COPY Cargo.toml Cargo.lock ./
COPY .cargo/ .cargo/
COPY vocab/ vocab/
COPY model/ model/
COPY training/ training/
COPY serving/ serving/
COPY evaluation/ evaluation/
COPY nmt-eval/ nmt-eval/
COPY analysis/ analysis/
COPY figures/ figures/
# A workspace member (nmt-train's c10d layer): cargo reads every member's manifest, though
# the image builds no binary that links it.
COPY distributed/ distributed/
# The int8 kernels' shim (model links it: nmt-bundle compress --int8 and int8 bundles).
COPY quantized/ quantized/
# What distributed/ and quantized/ share about their C++ shims (the libtorch build of their
# build scripts, the shims' exception guard and its Rust side).
COPY build-support/ build-support/
# No debug info and stripped: the shipped binaries are for running, not profiling.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,id=lstm-nmt-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=lstm-nmt-target,target=/src/target \
    cargo build --release --locked \
      -p serving --bin nmt-serve \
      -p model --bin nmt-translate \
      -p nmt-eval --bin nmt-eval \
 && mkdir -p /out/bin \
 && cp target/release/nmt-serve target/release/nmt-translate target/release/nmt-eval /out/bin/

# The shared libraries the binaries load on a CPU: libtorch_cpu and c10 (the
# linker drops torch and torch_cuda as unused), libgomp (OpenMP), and the two
# CUDA runtime pieces libtorch_cpu itself links to (cudart, cupti; small).
# libtorch_cuda and the rest of CUDA (gigabytes) are only in runtime-cuda.
RUN mkdir -p /out/cpu/torch/lib /out/cpu/nvidia/cu13/lib \
 && cp -a /opt/libtorch/torch/lib/libtorch_cpu.so /opt/libtorch/torch/lib/libc10.so \
          /opt/libtorch/torch/lib/libgomp.so.1 /out/cpu/torch/lib/ \
 && cp -a /opt/libtorch/nvidia/cu13/lib/libcudart.so.13 \
          /opt/libtorch/nvidia/cu13/lib/libcupti.so.13 /out/cpu/nvidia/cu13/lib/ \
 && for b in /out/bin/*; do \
      LD_LIBRARY_PATH=/out/cpu/torch/lib:/out/cpu/nvidia/cu13/lib ldd "$b" | grep -q "not found" \
        && { echo "missing libraries for $b:"; LD_LIBRARY_PATH=/out/cpu/torch/lib:/out/cpu/nvidia/cu13/lib ldd "$b"; exit 1; }; \
      true; \
    done

############################################################################
# Common runtime settings.
FROM debian:bookworm-slim AS runtime-base
# curl: the HEALTHCHECK probe.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /opt/lstm-nmt --shell /usr/sbin/nologin nmt
COPY --from=build /out/bin/ /usr/local/bin/
WORKDIR /opt/lstm-nmt
COPY --chown=root:root checkpoints/multi30k-de-en/ /opt/lstm-nmt/checkpoints/multi30k-de-en/
# nmt-serve reads every setting from NMT_* variables (README: Docker).
ENV NMT_MODEL=/opt/lstm-nmt/checkpoints/multi30k-de-en \
    NMT_ADDR=0.0.0.0:8080 \
    NMT_DEVICE=auto \
    OMP_WAIT_POLICY=PASSIVE
VOLUME ["/models"]
EXPOSE 8080
USER nmt
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["nmt-serve"]

############################################################################
# CUDA variant: the whole libtorch with its CUDA wheels (several GB). Needs
# the host's NVIDIA driver and the NVIDIA container toolkit (`--gpus all`).
FROM runtime-base AS runtime-cuda
USER root
COPY --from=build /opt/libtorch/torch/lib/ /opt/libtorch/torch/lib/
COPY --from=build /opt/libtorch/nvidia/ /opt/libtorch/nvidia/
ENV NMT_DEVICE=cuda
USER nmt

############################################################################
# CPU image (the default target: last in the file).
FROM runtime-base AS runtime
USER root
COPY --from=build /out/cpu/ /opt/libtorch/
USER nmt
