#!/usr/bin/env bash
# Corpus pipeline benchmark at WMT14 scale (4.5M pairs); figures go to
# docs/BENCHMARKS.md, "Corpus pipeline". Runs the release-profile bench
# target training/benches/corpus_pipeline.rs three ways:
#   ids  + 32K vocab  (u16 storage)
#   ids  + 70K vocab  (u32 storage)
#   text + 32K vocab  (synthetic text files read, checked and encoded)
# Peak RSS is reported by the binary (VmHWM) and, as a cross-check, by
# GNU time ("Maximum resident set size").
# Usage: bench/corpus/run.sh [extra args for every run, e.g. --pairs 1000000]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p training --bench corpus_pipeline --no-run
bin=$(ls -t target/release/deps/corpus_pipeline-* | grep -v '\.d$' | head -n1)
for args in "--mode ids --vocab 32000" "--mode ids --vocab 70000" "--mode text --vocab 32000"; do
    echo "== corpus_pipeline $args $*"
    # shellcheck disable=SC2086
    /usr/bin/time -f "GNU time: max RSS %M KiB, wall %e s, user %U s" "$bin" $args "$@"
    echo
done
