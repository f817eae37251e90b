#!/usr/bin/env bash
# Nightly backup of an application's files and its database dump, then
# retention and a rolling integrity check. Run from cron or the systemd timer
# beside this file. Exit code 3 from backup (some files unreadable) is
# reported but does not stop the rest.
set -uo pipefail

export LIFEBOAT_REPOSITORY=${LIFEBOAT_REPOSITORY:-/srv/backup/app-repo}
export LIFEBOAT_PASSWORD_FILE=${LIFEBOAT_PASSWORD_FILE:-/etc/lifeboat/app.password}

status=0
lifeboat backup --tag nightly --exclude-file /etc/lifeboat/app.excludes /var/lib/app /etc/app
rc=$?; [ $rc -ne 0 ] && status=$rc

# A database dump as a stream: always read in full, never skipped. lifeboat
# runs pg_dump itself, so a dump that fails (or is killed) writes no snapshot.
lifeboat backup --tag nightly --stdin-from-command --stdin-name app.dump -- pg_dump --format=custom app
rc=$?; [ $rc -ne 0 ] && status=$rc

lifeboat forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 3 --prune || status=1

# Read one seventh of all data every night: everything is read once a week.
lifeboat check --read-data-subset "$(( $(date +%u) ))/7" || status=1

exit $status
