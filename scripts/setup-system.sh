#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, when missing:
# cmake and pkg-config (SentencePiece bindings), sentencepiece (spm_train makes
# test fixtures), chromium (the web page's end-to-end test), libgloo-dev (Gloo's
# headers, which the c10d shim of distributed/ compiles against; the PyPI torch
# wheel has c10d's headers but not Gloo's).
# Idempotent: nothing runs when every command below is already present.
set -euo pipefail

# command-or-file  package (a probe with a / is a file that must exist)
NEEDS=(
  "pkg-config pkg-config"
  "cmake cmake"
  "spm_train sentencepiece"
  "chromium chromium"
  "/usr/include/gloo/algorithm.h libgloo-dev"
)

missing=()
for pair in "${NEEDS[@]}"; do
  read -r probe pkg <<<"$pair"
  if [[ "$probe" == */* ]]; then
    [[ -e "$probe" ]] || missing+=("$pkg")
  else
    command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
  echo "setup-system: missing packages ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
  exit 1
fi
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
echo "setup-system: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
