#!/usr/bin/env bash
# Builds the Dockerfile and checks the running container answers real
# translations, without a Docker engine: ../shared/tools/container-smoke
# builds with buildah and runs the image's ENTRYPOINT on the host network.
#
#   scripts/docker-smoke.sh            build local/lstm-nmt:smoke, run, probe
#   SMOKE_SKIP_BUILD=1 scripts/...     probe an image built before
#
# The probe (scripts/docker-probe.sh) calls /health, /v1/translate and the
# LibreTranslate /translate route and checks the answers.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOL=${CONTAINER_SMOKE:-../shared/tools/container-smoke}
TAG=${SMOKE_TAG:-local/lstm-nmt:smoke}
PORT=${SMOKE_PORT:-18080}

if [[ ! -x "$TOOL" ]]; then
  echo "docker-smoke: $TOOL not found (set CONTAINER_SMOKE=/path/to/container-smoke)" >&2
  exit 1
fi
if [[ ! -f checkpoints/multi30k-de-en/config.json ]]; then
  echo "docker-smoke: checkpoints/multi30k-de-en has no bundle; the image ships it" >&2
  exit 1
fi
if [[ -z "${SMOKE_SKIP_BUILD:-}" ]]; then
  # No --layers: with buildah's vfs storage every committed step is a full copy
  # of the file system (gigabytes here, with libtorch); the RUN steps' cache
  # mounts (pip downloads, cargo registry and target) make rebuilds cheap.
  "$TOOL" build -t "$TAG" .
fi
"$TOOL" run -t "$TAG" --port "$PORT" --timeout 180 -e "NMT_ADDR=127.0.0.1:$PORT" \
  -- scripts/docker-probe.sh "http://127.0.0.1:$PORT"
