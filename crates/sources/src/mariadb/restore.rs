//! Restoring a MariaDB logical backup: one database into a new database
//! (created, loaded, counted, and dropped again if anything fails), every
//! database into a server, or `--validate-only` (the stored dump read whole
//! through [`dumpscan`](super::dumpscan) and its counts compared). A
//! database that exists is replaced only with `overwrite`, and only after
//! the backup was first restored beside it under a staging name and its
//! counts matched.

use lifeboat_repo::{browse, IndexedRepository, RepoError, Snapshot};

use super::pitr::{self, BinlogTarget};
use super::{dumpscan, hex_literal, ident, MariadbMeta, MariadbUrl, SYSTEM};
use crate::counts::{compare, Restored, TableCount};
use crate::error::{Result, SourceError};
use crate::tee::read_stored;

/// Restores (`target` a URL) or validates (`None`) the MariaDB backup
/// `snapshot`.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    target: Option<&str>,
    overwrite: bool,
) -> Result<Restored> {
    restore_to(repo, snapshot, id, target, overwrite, None, None)
}

/// [`restore`], then (with `goal`) the archived binary logs replayed onto
/// it up to the goal: a point-in-time restore. The goal is proven
/// reachable, and the logs fetched, before anything is restored. With
/// `table`, only that table of a one-database dump (into a new database).
pub fn restore_to(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    target: Option<&str>,
    overwrite: bool,
    goal: Option<BinlogTarget>,
    table: Option<&str>,
) -> Result<Restored> {
    let mut meta = MariadbMeta::of(snapshot).ok_or_else(|| {
        SourceError::WrongSnapshot(format!("snapshot {id} is not a MariaDB backup"))
    })?;
    if let Some(t) = table {
        if goal.is_some() {
            return Err(SourceError::Usage(
                "--table does not combine with --time, --gtid or --latest: restore the database to that point, then copy the table from it".into(),
            ));
        }
        if meta.mode != "logical" {
            return Err(SourceError::Usage(format!(
                "--table restores from a one-database dump; snapshot {id} is a {} backup: restore it into a scratch server and copy the table from there",
                meta.mode
            )));
        }
        let names: Vec<String> = meta.tables.iter().map(|t| t.table.clone()).collect();
        meta.tables.retain(|x| x.table == t);
        if meta.tables.is_empty() {
            return Err(SourceError::Usage(format!(
                "snapshot {id} holds no table {t} (it holds {})",
                names.join(", ")
            )));
        }
    }
    if meta.mode == "physical" {
        if goal.is_some() {
            return Err(SourceError::Usage(format!(
                "snapshot {id} is a physical backup: restore it, start the server on it, and replay binary logs onto a logical backup instead (point-in-time restores replay onto dumps)"
            )));
        }
        return super::physical::restore(repo, snapshot, id, &meta, target, overwrite);
    }
    let node = browse::find_node(repo, snapshot, id, &format!("/{}", meta.dump))?;
    let Some(target) = target else {
        let default_db = meta.database.clone().unwrap_or_default();
        let scan = read_stored(repo, &node, |r| dumpscan::scan(r, &default_db))?
            .map_err(|e| SourceError::Mismatch(format!("the stored dump is not valid: {e}")))?;
        if !scan.completed {
            return Err(SourceError::Mismatch(format!(
                "the stored dump of snapshot {id} lacks its '-- Dump completed' line"
            )));
        }
        let found = |t: &TableCount| scan.rows.get(&(t.schema.clone(), t.table.clone())).copied();
        return Ok(compare(None, &meta.tables, found, false));
    };
    let url = MariadbUrl::parse(target)?;
    let logs = tempfile::tempdir().map_err(|e| RepoError::io("create", std::env::temp_dir(), e))?;
    let replay = goal
        .map(|g| pitr::prepare(repo, &meta, id, g, logs.path()))
        .transpose()?;
    // The dump loaded into `db` (every database: `None`); once its counts
    // match, the logs replayed onto it.
    let load = |db: Option<&str>| load(repo, &node, &url, db, table);
    let replay = |db: Option<&str>, r: &mut Restored| {
        if let Some(p) = &replay {
            pitr::replay(&url, p, meta.database.as_deref(), db)?;
            r.replayed = Some(p.replayed.clone());
        }
        Ok(())
    };
    match (&meta.database, &url.database) {
        (Some(_), Some(new)) => {
            let exists = database_exists(&url, new)?;
            if exists && !overwrite {
                return Err(SourceError::Exists {
                    what: format!("database {new} on {url}"),
                });
            }
            if exists {
                // Proven on this server first, beside the one it replaces.
                let staging = format!("lifeboat_restore_{}", std::process::id());
                let checked = into_new(&url, &staging, &meta, &load, &replay);
                let _ = url.query(None, &format!("DROP DATABASE IF EXISTS {}", ident(&staging)));
                let checked = checked?;
                if let Some(e) = checked.mismatch_error(&format!("database {new} was not touched")) {
                    return Err(e);
                }
                url.query(None, &format!("DROP DATABASE {}", ident(new)))?;
            }
            let mut r = into_new(&url, new, &meta, &load, &replay)?;
            r.replaced = exists;
            if let Some(e) = r.mismatch_error(&format!("database {new} was dropped again")) {
                let _ = url.query(None, &format!("DROP DATABASE IF EXISTS {}", ident(new)));
                return Err(e);
            }
            Ok(r)
        }
        (None, None) => {
            let dbs: Vec<String> = {
                let mut d: Vec<String> = meta.tables.iter().map(|t| t.schema.clone()).collect();
                d.dedup();
                d
            };
            let mut present: Vec<&String> = vec![];
            for d in &dbs {
                if database_exists(&url, d)? {
                    present.push(d);
                }
            }
            if !present.is_empty() && !overwrite {
                return Err(SourceError::Exists {
                    what: format!(
                        "database {} on {url}",
                        present.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            load(None)?;
            let found = counts(&url, &meta.tables)?;
            let mut r = compare(Some(url.to_string()), &meta.tables, |t| found(t), !present.is_empty());
            if r.mismatches().is_empty() {
                replay(None, &mut r)?;
            }
            Ok(r)
        }
        (Some(db), None) => Err(SourceError::Usage(format!(
            "snapshot {id} holds database {db}: name the new database in the target (…/NEWDB)"
        ))),
        (None, Some(_)) => Err(SourceError::Usage(format!(
            "snapshot {id} holds every database of its server: give the server without a database (mariadb://USER@HOST:PORT/)"
        ))),
    }
}

/// Creates `db`, loads the dump into it and counts it, then (the counts
/// matching) replays the logs onto it; on failure drops it.
fn into_new(
    url: &MariadbUrl,
    db: &str,
    meta: &MariadbMeta,
    load: &dyn Fn(Option<&str>) -> Result<()>,
    replay: &dyn Fn(Option<&str>, &mut Restored) -> Result<()>,
) -> Result<Restored> {
    url.query(None, &format!("CREATE DATABASE {}", ident(db)))?;
    let loaded = load(Some(db)).and_then(|()| {
        let tables: Vec<TableCount> = meta
            .tables
            .iter()
            .map(|t| TableCount {
                schema: db.to_string(),
                ..t.clone()
            })
            .collect();
        let found = counts(url, &tables)?;
        let mut r = compare(
            Some(url.with_database(Some(db)).to_string()),
            &meta.tables,
            |t| {
                found(&TableCount {
                    schema: db.to_string(),
                    ..t.clone()
                })
            },
            false,
        );
        if r.mismatches().is_empty() {
            replay(Some(db), &mut r)?;
        }
        Ok(r)
    });
    if loaded.is_err() {
        let _ = url.query(None, &format!("DROP DATABASE IF EXISTS {}", ident(db)));
    }
    loaded
}

fn database_exists(url: &MariadbUrl, db: &str) -> Result<bool> {
    let rows = url.query(
        None,
        &format!(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = {}",
            hex_literal(db)
        ),
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .is_some_and(|n| n != "0"))
}

/// Rows of each table in the server now (`None`: the table is missing).
fn counts(url: &MariadbUrl, tables: &[TableCount]) -> Result<impl Fn(&TableCount) -> Option<u64>> {
    let mut found = std::collections::HashMap::new();
    for t in tables
        .iter()
        .filter(|t| !SYSTEM.contains(&t.schema.as_str()))
    {
        let q = format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
            hex_literal(&t.schema),
            hex_literal(&t.table)
        );
        let present = url
            .query(None, &q)?
            .first()
            .and_then(|r| r.first())
            .is_some_and(|n| n != "0");
        if present {
            let rows = url.query(
                None,
                &format!(
                    "SELECT COUNT(*) FROM {}.{}",
                    ident(&t.schema),
                    ident(&t.table)
                ),
            )?;
            if let Some(n) = rows
                .first()
                .and_then(|r| r.first())
                .and_then(|n| n.parse::<u64>().ok())
            {
                found.insert((t.schema.clone(), t.table.clone()), n);
            }
        }
    }
    Ok(move |t: &TableCount| found.get(&(t.schema.clone(), t.table.clone())).copied())
}

/// Feeds the stored dump (or only `table`'s part of it) to the `mariadb`
/// client (into `db`, if given).
fn load(
    repo: &IndexedRepository,
    node: &lifeboat_repo::tree::Node,
    url: &MariadbUrl,
    db: Option<&str>,
    table: Option<&str>,
) -> Result<()> {
    let shown = url.with_database(db).to_string();
    let mut c = url.command("mariadb");
    c.arg("--batch").arg("--default-character-set=utf8mb4");
    if let Some(d) = db {
        c.arg(format!("--database={d}"));
    }
    c.stdout(std::process::Stdio::null());
    match table {
        Some(t) => {
            crate::producer::feed_stored_through(repo, node, c, "mariadb", &shown, false, |w| {
                dumpscan::OneTable::new(w, t)
            })??
        }
        None => crate::producer::feed_stored(repo, node, c, "mariadb", &shown, false)??,
    };
    Ok(())
}
