#!/usr/bin/env bash
# Compares lifeboat with restic, BorgBackup and rustic on the same data in
# one run and writes bench/RESULTS.md. Run by hand (as root), not by CI:
#   bench/run.sh            # 3 runs per tool (RUNS=5 bench/run.sh for more)
# Needs ~12 GB free under BENCH_DIR (default /var/tmp/lifeboat-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
[ -x /usr/bin/time ] || missing+=(time)
command -v pgbench >/dev/null || missing+=(postgresql postgresql-contrib)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
command -v rustic >/dev/null || cargo install --locked rustic-rs

cargo build --release --locked -p lifeboat
cargo build --release --locked -p lifeboat-repo --example limits
exec python3 bench/compare.py "$@"
