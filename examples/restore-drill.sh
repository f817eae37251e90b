#!/usr/bin/env bash
# A manual restore drill: restore the latest snapshot into a scratch
# directory, time it, and compare it with the live data.
set -euo pipefail
export LIFEBOAT_REPOSITORY=${LIFEBOAT_REPOSITORY:-/srv/backup/app-repo}
export LIFEBOAT_PASSWORD_FILE=${LIFEBOAT_PASSWORD_FILE:-/etc/lifeboat/app.password}

scratch=$(mktemp -d /srv/restore-drill.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
start=$(date +%s)
# The newest snapshot that holds /var/lib/app (the nightly job's database
# dump is newer, so plain `latest` would be that stream), its /var/lib/app
# straight into the scratch directory.
# --verify reads every restored file back and compares it with the snapshot.
lifeboat restore latest:/var/lib/app --path /var/lib/app --target "$scratch" --verify
echo "restore took $(( $(date +%s) - start )) s"
diff -r --no-dereference /var/lib/app "$scratch" && echo "restored data matches the live data"
