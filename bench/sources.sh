#!/usr/bin/env bash
# lifeboat's database sources against the tools users would run instead
# (Redis: redis-cli --rdb; MariaDB: bare mariadb-dump; SQLite: a writer's throughput alone and during a
# backup), on the same data in one run; writes the "Database sources"
# section of bench/RESULTS.md. Run by hand as root on an idle machine:
#   bench/sources.sh                # all (RUNS=3, REDIS_MB=1100, SQLITE_MB=1100, MARIADB_ROWS=2500000)
#   bench/sources.sh mariadb        # one section; the others keep their last results
# Needs ~8 GB free under BENCH_DIR (default /var/tmp/lifeboat-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
}
cargo build --release --locked -p lifeboat
exec python3 bench/sources.py "$@"
