#!/usr/bin/env bash
# A manual restore drill: restore the latest snapshot into a scratch
# directory, time it, and compare it with the live data.
set -euo pipefail
export LIFEBOAT_REPOSITORY=${LIFEBOAT_REPOSITORY:-/srv/backup/app-repo}
export LIFEBOAT_PASSWORD_FILE=${LIFEBOAT_PASSWORD_FILE:-/etc/lifeboat/app.password}

scratch=$(mktemp -d /srv/restore-drill.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
start=$(date +%s)
lifeboat restore latest --target "$scratch" --include 'app/**'
echo "restore took $(( $(date +%s) - start )) s"
diff -r --no-dereference /var/lib/app "$scratch/app" && echo "restored data matches the live data"
