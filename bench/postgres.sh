#!/usr/bin/env bash
# Compares lifeboat with pgBackRest on one PostgreSQL cluster (pgbench
# scale 50) and writes the "PostgreSQL against pgBackRest" section of
# bench/RESULTS.md. Run by hand as root on an idle machine, not by CI:
#   bench/postgres.sh                 # 3 runs (RUNS=5 for more; PG_SCALE, PITR_SEGMENTS, PUSH_SEGMENTS)
# Needs ~15 GB free under BENCH_DIR (default /var/tmp/lifeboat-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v pgbackrest >/dev/null || missing+=(pgbackrest)
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build --release --locked -p lifeboat
exec python3 bench/postgres.py "$@"
