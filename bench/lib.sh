# What the benchmark and study scripts (bench/, scripts/) share. Each sources it first:
#   . "$(dirname "$0")/../lib.sh"    (from bench/NAME/; bench/ and scripts/ adjust the path)
# and gets ROOT, the repository's folder (it does not change the working folder).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# usage LAST: the calling script's header comment (lines 2 to LAST), then exit 0: its --help.
usage() { sed -n "2,${1}p" "$0"; exit 0; }

# die MESSAGE...: MESSAGE on stderr, then exit 2 (a bad command line or a missing input).
die() { echo "$*" >&2; exit 2; }

# need WHO PATH...: dies saying "WHO: PATH not found" unless every PATH exists.
need() {
  local who="$1" path
  shift
  for path in "$@"; do
    [[ -e "$path" ]] || die "$who: $path not found"
  done
}

# work_folder DIR NAME: DIR, or when DIR is empty a new temporary folder NAME-XXXXXX; says
# which on stderr.
work_folder() {
  local dir="$1"
  [[ -n "$dir" ]] || dir="$(mktemp -d -t "$2-XXXXXX")"
  echo "work folder: $dir" >&2
  echo "$dir"
}

# run_bench BENCH ARGS...: the release binary of the bench target BENCH with ARGS (after a
# `cargo bench --no-run` of it, cargo builds nothing more). The training step lives in the
# training crate (train_throughput), the rest in the model crate.
run_bench() {
  local name="$1" package=model
  shift
  [[ "$name" == train_throughput ]] && package=training
  cargo bench -q -p "$package" --bench "$name" -- "$@"
}
