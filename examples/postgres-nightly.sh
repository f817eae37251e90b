#!/usr/bin/env bash
# Nightly protection of a PostgreSQL server, beside continuous WAL archiving
# (archive_command = 'lifeboat -q wal push %p', see the README): a base
# backup for point-in-time recovery, a logical dump of the main database
# with its row counts, proof that the dump restores, a check of the WAL
# archive, then retention (which also expires WAL no kept base backup needs).
set -uo pipefail

export LIFEBOAT_REPOSITORY=${LIFEBOAT_REPOSITORY:-/srv/backup/db-repo}
export LIFEBOAT_PASSWORD_FILE=${LIFEBOAT_PASSWORD_FILE:-/var/lib/postgresql/lifeboat.key}
# Where the server is: libpq's URL form; the password, if any, from ~/.pgpass.
server=${PG_SERVER:-postgres://backup@localhost:5432/}
database_url=${PG_DATABASE_URL:-postgres://backup@localhost:5432/app}
dump=$(basename "${database_url%%\?*}").pgdump   # app.pgdump

status=0
lifeboat backup --tag nightly --source "$server" --physical || status=1
lifeboat backup --tag nightly --source "$database_url" || status=1
lifeboat restore latest --path "/$dump" --validate-only || status=1
lifeboat wal verify || status=1
lifeboat forget --keep-daily 7 --keep-weekly 5 --prune || status=1
exit $status
