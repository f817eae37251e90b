//! Restoring a Redis backup into a running server (`RESTORE` of each key,
//! pipelined), or validating it (`--validate-only`: the stored file read
//! whole through the RDB reader). Both end by comparing keys per database
//! with the counts the backup recorded.

use lifeboat_repo::{browse, IndexedRepository, Snapshot};

use super::rdb::{self, Item};
use super::resp::{Conn, Reply};
use super::{RedisMeta, RedisUrl};
use crate::counts::{compare, Restored, TableCount};
use crate::error::{Result, SourceError};
use crate::tee::read_stored;

/// Commands sent before their replies are read.
const PIPELINE: usize = 512;

/// Restores the Redis backup `snapshot` into the server `target` names
/// (`None`: validates it). The server must hold no keys, or `overwrite`
/// flushes it first (`FLUSHALL`). Keys whose expiry has passed since the
/// backup are not restored and not expected.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    target: Option<&str>,
    overwrite: bool,
) -> Result<Restored> {
    let meta = RedisMeta::of(snapshot).ok_or_else(|| {
        SourceError::WrongSnapshot(format!("snapshot {id} is not a Redis backup"))
    })?;
    let node = browse::find_node(repo, snapshot, id, &format!("/{}", meta.file))?;
    let Some(target) = target else {
        let summary =
            read_stored(repo, &node, |r| rdb::read(r, false, |_| Ok(())))?.map_err(invalid)?;
        let found = |t: &TableCount| db_of(t).and_then(|db| summary.dbs.get(&db)).map(|k| k.keys);
        return Ok(compare(None, &recorded(&meta, &[]), found, false));
    };
    let url = RedisUrl::parse(target)?;
    let shown = url.to_string();
    let mut conn = Conn::connect(&url)?;
    let before = keyspace(&mut conn)?;
    let held: u64 = before.iter().map(|(_, n)| n).sum();
    if held > 0 {
        if !overwrite {
            return Err(SourceError::Usage(format!(
                "{shown} is not empty ({held} keys): restore into an empty server, or give --overwrite to flush it (FLUSHALL) first"
            )));
        }
        if let Reply::Error(e) = conn.command(&[b"FLUSHALL", b"SYNC"])? {
            return Err(conn.refused("FLUSHALL", &e));
        }
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let mut expired: Vec<(u64, u64)> = vec![];
    let mut db = 0u64;
    let mut in_flight = 0usize;
    let mut restored = 0u64;
    let loaded = read_stored(repo, &node, |r| {
        let io = |e: SourceError| std::io::Error::other(e.to_string());
        rdb::read(r, true, |item| {
            match item {
                Item::Key {
                    db: key_db,
                    key,
                    expire_ms,
                    payload,
                } => {
                    if expire_ms.is_some_and(|t| t <= now_ms) {
                        match expired.iter_mut().find(|(d, _)| *d == key_db) {
                            Some((_, n)) => *n += 1,
                            None => expired.push((key_db, 1)),
                        }
                        return Ok(());
                    }
                    if key_db != db {
                        conn.send(&[b"SELECT", key_db.to_string().as_bytes()])
                            .map_err(io)?;
                        in_flight += 1;
                        db = key_db;
                    }
                    let ttl = expire_ms.unwrap_or(0).to_string();
                    let mut args: Vec<&[u8]> = vec![b"RESTORE", key, ttl.as_bytes(), payload];
                    if expire_ms.is_some() {
                        args.push(b"ABSTTL");
                    }
                    conn.send(&args).map_err(io)?;
                    in_flight += 1;
                    restored += 1;
                }
                Item::Function(code) => {
                    conn.send(&[b"FUNCTION", b"LOAD", b"REPLACE", code])
                        .map_err(io)?;
                    in_flight += 1;
                }
            }
            if in_flight >= PIPELINE {
                drain(&mut conn, &mut in_flight).map_err(io)?;
            }
            Ok(())
        })
    });
    let result = match loaded {
        Ok(Ok(_)) => drain(&mut conn, &mut in_flight),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => Err(invalid(e)),
        Ok(Err(e)) => Err(SourceError::Mismatch(e.to_string())),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        return Err(SourceError::Tool {
            program: "redis".into(),
            target: shown,
            message: format!(
                "the restore stopped after {restored} keys, so the server holds part of the backup (restore again with --overwrite to start over): {e}"
            ),
        });
    }
    let after = keyspace(&mut conn)?;
    let found = |t: &TableCount| {
        db_of(t).map(|db| after.iter().find(|(d, _)| *d == db).map_or(0, |(_, n)| *n))
    };
    Ok(compare(
        Some(shown),
        &recorded(&meta, &expired),
        found,
        held > 0,
    ))
}

/// Reads every reply in flight; the first refused command fails.
fn drain(conn: &mut Conn, in_flight: &mut usize) -> Result<()> {
    let mut first_error = None;
    while *in_flight > 0 {
        if let Reply::Error(e) = conn.reply()? {
            first_error.get_or_insert(e);
        }
        *in_flight -= 1;
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(conn.refused(
            "RESTORE",
            &if e.contains("payload version") {
                format!("{e} (the target is an older Redis than the one backed up)")
            } else {
                e
            },
        )),
    }
}

/// The recorded counts as tables `dbN.keys`, less the keys that expired
/// since the backup.
fn recorded(meta: &RedisMeta, expired: &[(u64, u64)]) -> Vec<TableCount> {
    meta.databases
        .iter()
        .map(|d| TableCount {
            schema: format!("db{}", d.db),
            table: "keys".into(),
            rows: d.keys
                - expired
                    .iter()
                    .find(|(db, _)| *db == d.db)
                    .map_or(0, |(_, n)| (*n).min(d.keys)),
        })
        .collect()
}

fn db_of(t: &TableCount) -> Option<u64> {
    t.schema.strip_prefix("db")?.parse().ok()
}

/// Keys per database (`INFO keyspace`).
fn keyspace(conn: &mut Conn) -> Result<Vec<(u64, u64)>> {
    let info = match conn.command(&[b"INFO", b"keyspace"])? {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        Reply::Error(e) => return Err(conn.refused("INFO keyspace", &e)),
        other => return Err(conn.refused("INFO keyspace", &format!("{other:?}"))),
    };
    Ok(info
        .lines()
        .filter_map(|l| {
            let (db, rest) = l.strip_prefix("db")?.split_once(':')?;
            let keys = rest.split(',').find_map(|kv| kv.strip_prefix("keys="))?;
            Some((db.parse().ok()?, keys.parse().ok()?))
        })
        .collect())
}

fn invalid(e: std::io::Error) -> SourceError {
    SourceError::Mismatch(format!("the stored RDB file is not valid: {e}"))
}
