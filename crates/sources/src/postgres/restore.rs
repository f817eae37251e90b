//! Restoring a logical backup: into a new database (built under a staging
//! name and renamed into place only once its row counts match the
//! backup's), or `--validate-only`: the whole archive read through
//! `pg_restore` and its rows counted, without a server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use lifeboat_repo::{browse, IndexedRepository, Snapshot};

use super::psql::{ident, last_error, literal, Session};
use super::{program, ClusterMeta, LogicalMeta};
use crate::counts::{compare, Restored, TableCheck, TableCount};
use crate::error::{Result, SourceError};
use crate::producer::StderrTail;
use crate::url::ConnUrl;

/// Options of a restore into PostgreSQL.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace the target database if it exists.
    pub overwrite: bool,
    /// Restore only this table (`name` or `schema.name`).
    pub table: Option<String>,
    /// Of a backup of every database: the one to restore.
    pub database: Option<String>,
    /// Leave ownership as the connecting user (`pg_restore --no-owner`):
    /// for a server without the original roles.
    pub no_owner: bool,
}

/// The dump of `database` in the snapshot (a backup of one database, or of
/// every database: then `database` picks one).
fn meta_of(snapshot: &Snapshot, id: &str, database: Option<&str>) -> Result<LogicalMeta> {
    if let Some(m) = LogicalMeta::of(snapshot) {
        return match database {
            Some(d) if d != m.database => Err(SourceError::Usage(format!(
                "snapshot {id} holds database {:?} only, not {d:?}",
                m.database
            ))),
            _ => Ok(m),
        };
    }
    if let Some(c) = ClusterMeta::of(snapshot) {
        let names: Vec<&str> = c.databases.iter().map(|d| d.database.as_str()).collect();
        return match database {
            Some(d) => c.databases.iter().find(|m| m.database == d).cloned().ok_or_else(|| {
                SourceError::Usage(format!("snapshot {id} has no database {d:?} (it holds {})", names.join(", ")))
            }),
            None => Err(SourceError::Usage(format!(
                "snapshot {id} holds every database of its server ({}): give --database NAME, or a target without a database to restore them all",
                names.join(", ")
            ))),
        };
    }
    Err(SourceError::WrongSnapshot(format!(
        "snapshot {id} is not a PostgreSQL logical backup (it holds {})",
        snapshot.paths.join(" ")
    )))
}

/// The recorded tables `table` selects (all without it).
fn selected(meta: &LogicalMeta, table: Option<&str>) -> Result<Vec<TableCount>> {
    let Some(want) = table else {
        return Ok(meta.tables.clone());
    };
    let picked: Vec<TableCount> = meta
        .tables
        .iter()
        .filter(|t| t.qualified() == want || t.table == want)
        .cloned()
        .collect();
    match picked.len() {
        1 => Ok(picked),
        0 => Err(SourceError::Usage(format!(
            "the backup has no table {want:?}"
        ))),
        _ => Err(SourceError::Usage(format!(
            "{want:?} names several tables; give schema.table"
        ))),
    }
}

/// `pg_restore` arguments that select one table.
fn table_args(t: &[TableCount], table: Option<&str>) -> Vec<String> {
    match (table, t) {
        (Some(_), [t]) => vec![
            format!("--schema={}", t.schema),
            format!("--table={}", t.table),
        ],
        _ => vec![],
    }
}

/// Runs `pg_restore` with `args`, feeding it the snapshot's dump; hands its
/// stdout to `consume`. Fails with pg_restore's own words.
fn pg_restore<T: Send>(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    meta: &LogicalMeta,
    env: Vec<(&'static str, String)>,
    args: &[String],
    shown: &str,
    consume: impl FnOnce(&mut dyn Read) -> std::io::Result<T> + Send,
) -> Result<T> {
    let node = browse::find_node(repo, snapshot, shown, &format!("/{}", meta.dump))?;
    let tool = |message: String| SourceError::Tool {
        program: "pg_restore".into(),
        target: shown.to_string(),
        message,
    };
    let mut child = Command::new(program("pg_restore"))
        .args(args)
        .envs(env)
        .env("PGAPPNAME", "lifeboat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            tool(format!(
                "cannot run it: {}",
                lifeboat_repo::error::io_words(&e)
            ))
        })?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(tool("no pipes".into()));
    };
    let mut said = StderrTail::spawn(stderr);
    let (fed, consumed) = std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            let r = browse::dump(repo, &node, &mut stdin);
            drop(stdin);
            r
        });
        let consumed = consume(&mut stdout);
        // Drain what is left, so pg_restore never blocks on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let fed = feeder.join().unwrap_or_else(|_| {
            Err(lifeboat_repo::RepoError::Internal(
                "the dump feeder panicked".into(),
            ))
        });
        (fed, consumed)
    });
    let status = child.wait().map_err(|e| tool(e.to_string()))?;
    let said = said.finish();
    if !status.success() {
        return Err(tool(if said.is_empty() {
            status.to_string()
        } else {
            last_error(&said)
        }));
    }
    // A repository error (damaged data) explains more than a broken pipe.
    fed?;
    consumed.map_err(|e| tool(e.to_string()))
}

/// Proves the snapshot's dump restorable without a server: `pg_restore`
/// reads the whole archive (every data block decompressed) and the rows
/// of each table's `COPY` are counted against the recorded counts.
pub fn validate(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    database: Option<&str>,
    table: Option<&str>,
) -> Result<Restored> {
    if let (Some(c), None) = (ClusterMeta::of(snapshot), database) {
        if let Some(t) = table {
            return Err(SourceError::Usage(format!(
                "--table {t}: give --database too (snapshot {id} holds every database)"
            )));
        }
        // Every database of a server backup, each against its counts.
        let mut all = Restored {
            target: None,
            tables: vec![],
            rows: 0,
            replaced: false,
            replayed: None,
        };
        for m in &c.databases {
            let one = validate(repo, snapshot, id, Some(&m.database), None)?;
            all.rows += one.rows;
            all.tables
                .extend(one.tables.into_iter().map(|t| TableCheck {
                    table: format!("{}/{}", m.database, t.table),
                    ..t
                }));
        }
        return Ok(all);
    }
    let meta = meta_of(snapshot, id, database)?;
    let want = selected(&meta, table)?;
    let mut args = vec!["--file=-".to_string()];
    args.extend(table_args(&want, table));
    let counted = pg_restore(
        repo,
        snapshot,
        &meta,
        vec![],
        &args,
        &format!("snapshot {id}"),
        |out| count_copy_rows(out),
    )?;
    Ok(compare(
        None,
        &want,
        |t| counted.get(&(t.schema.clone(), t.table.clone())).copied(),
        false,
    ))
}

/// Counts the data rows of every `COPY … FROM stdin;` in a SQL script,
/// by table. In COPY's text format a row is one line (newlines inside
/// values are escaped), and `\.` ends the data.
fn count_copy_rows(out: &mut dyn Read) -> std::io::Result<BTreeMap<(String, String), u64>> {
    let mut counts = BTreeMap::new();
    let mut r = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    let mut current: Option<(String, String)> = None;
    let mut n = 0u64;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        match &current {
            Some(_) if l == b"\\." => {
                if let Some(t) = current.take() {
                    *counts.entry(t).or_insert(0) += n;
                }
            }
            Some(_) => n += 1,
            None => {
                if let Some(t) = copy_target(l) {
                    current = Some(t);
                    n = 0;
                }
            }
        }
    }
    if current.is_some() {
        return Err(std::io::Error::other(
            "the archive ends inside a table's data",
        ));
    }
    Ok(counts)
}

/// The table of a `COPY schema.table (cols) FROM stdin;` line.
fn copy_target(l: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(l).ok()?;
    let rest = s.strip_prefix("COPY ")?;
    if !s.ends_with(" FROM stdin;") {
        return None;
    }
    let (schema, rest) = parse_ident(rest)?;
    let rest = rest.strip_prefix('.')?;
    let (table, _) = parse_ident(rest)?;
    Some((schema, table))
}

/// One SQL identifier at the start of `s` (quoted or not) and what follows.
fn parse_ident(s: &str) -> Option<(String, &str)> {
    if let Some(mut rest) = s.strip_prefix('"') {
        let mut out = String::new();
        loop {
            let i = rest.find('"')?;
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            match rest.strip_prefix('"') {
                Some(r) => {
                    out.push('"');
                    rest = r;
                }
                None => return Some((out, rest)),
            }
        }
    }
    let end = s.find(['.', ' ', '(']).unwrap_or(s.len());
    Some((s[..end].to_string(), &s[end..]))
}

/// Restores the snapshot's dump into the database `target` names: built
/// as a staging database, its counts compared with the backup's, and only
/// then renamed into place (replacing an existing one with `overwrite`).
/// On any failure the staging database is dropped and an existing target
/// is left as it was.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    target: &ConnUrl,
    opts: &RestoreOptions,
) -> Result<Restored> {
    let meta = meta_of(snapshot, id, opts.database.as_deref())?;
    let want = selected(&meta, opts.table.as_deref())?;
    let shown = target.to_string();
    let db = target.dbname.clone().ok_or_else(|| {
        SourceError::Usage(format!(
            "{shown}: name the database to restore into (postgres://…/NEWDB)"
        ))
    })?;
    let mut admin = Session::connect(&target.with_dbname("postgres"))?;
    let exists = |admin: &mut Session, name: &str| -> Result<bool> {
        Ok(admin.value(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            literal(name)
        ))? != "0")
    };
    let replaced = exists(&mut admin, &db)?;
    if replaced && !opts.overwrite {
        return Err(SourceError::Exists {
            what: format!("database {db:?} on {shown}"),
        });
    }
    let staging = staging_name(&db);
    if exists(&mut admin, &staging)? {
        admin.query(&format!("DROP DATABASE {} WITH (FORCE)", ident(&staging)))?;
    }
    admin.query(&format!(
        "CREATE DATABASE {} TEMPLATE template0",
        ident(&staging)
    ))?;
    let built = (|| -> Result<Restored> {
        // The database by name (pg_restore ignores PGDATABASE); the rest of
        // the connection, the password included, goes by environment.
        let mut args = vec![
            "--exit-on-error".to_string(),
            "--no-password".to_string(),
            format!("--dbname={staging}"),
        ];
        if opts.no_owner {
            args.push("--no-owner".into());
        }
        args.extend(table_args(&want, opts.table.as_deref()));
        let staged = target.with_dbname(&staging);
        pg_restore(repo, snapshot, &meta, staged.env(), &args, &shown, |out| {
            std::io::copy(out, &mut std::io::sink())
        })?;
        let mut s = Session::connect(&staged)?;
        let mut found = BTreeMap::new();
        for t in &want {
            let rows = s
                .query(&format!(
                    "SELECT count(*) FROM ONLY {}.{}",
                    ident(&t.schema),
                    ident(&t.table)
                ))
                .ok()
                .and_then(|r| r.first()?.first()?.parse::<u64>().ok());
            if rows.is_none() {
                // A missing table ended the session; the next needs a new one.
                s = Session::connect(&staged)?;
            }
            found.insert(t.qualified(), rows);
        }
        s.close()?;
        Ok(compare(
            Some(shown.clone()),
            &want,
            |t| found.get(&t.qualified()).copied().flatten(),
            replaced,
        ))
    })();
    let restored = match built {
        Ok(r) if r.mismatches().is_empty() => r,
        Ok(r) => {
            admin.query(&format!("DROP DATABASE {} WITH (FORCE)", ident(&staging)))?;
            return Err(r
                .mismatch_error("nothing was replaced")
                .unwrap_or_else(|| SourceError::Mismatch("the counts differ".into())));
        }
        Err(e) => {
            let _ = admin.query(&format!("DROP DATABASE {} WITH (FORCE)", ident(&staging)));
            return Err(e);
        }
    };
    if replaced {
        admin.query(&format!("DROP DATABASE {} WITH (FORCE)", ident(&db)))?;
    }
    admin.query(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        ident(&staging),
        ident(&db)
    ))?;
    admin.close()?;
    Ok(restored)
}

/// Restores a backup of every database onto the server `server` names:
/// the globals first (roles and tablespaces that exist already are
/// reported, not fatal: the server's own `postgres` role always does),
/// then each database under its own name, as [`restore`] does it.
/// Returns each database's result and what the globals script reported.
pub fn restore_cluster(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    server: &ConnUrl,
    opts: &RestoreOptions,
) -> Result<(Vec<Restored>, Vec<String>)> {
    let c = ClusterMeta::of(snapshot).ok_or_else(|| {
        SourceError::Usage(format!(
            "snapshot {id} is a backup of one database: name the database to restore into (postgres://…/NEWDB)"
        ))
    })?;
    let shown = server.to_string();
    let node = browse::find_node(repo, snapshot, &shown, &format!("/{}", c.globals))?;
    let mut child = Command::new(program("psql"))
        .args(["-X", "-q", "--no-password", "-f", "-"])
        .envs(server.with_dbname("postgres").env())
        .env("PGAPPNAME", "lifeboat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SourceError::Tool {
            program: "psql".into(),
            target: shown.clone(),
            message: lifeboat_repo::error::io_words(&e),
        })?;
    let (Some(mut stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
        return Err(SourceError::Tool {
            program: "psql".into(),
            target: shown,
            message: "no pipes".into(),
        });
    };
    let mut said = StderrTail::spawn(stderr);
    let fed = browse::dump(repo, &node, &mut stdin);
    drop(stdin);
    let status = child.wait().map_err(|e| SourceError::Tool {
        program: "psql".into(),
        target: shown.clone(),
        message: e.to_string(),
    })?;
    fed?;
    let said = said.finish();
    if !status.success() {
        return Err(SourceError::Tool {
            program: "psql".into(),
            target: shown,
            message: last_error(&said),
        });
    }
    let notes: Vec<String> = said
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(|l| format!("globals: {}", l.trim()))
        .collect();
    let mut done = vec![];
    let mut notes = notes;
    for m in &c.databases {
        // Every server has its own `postgres` database: an empty one in the
        // backup does not stand in the way.
        if m.database == "postgres" && m.tables.is_empty() && !opts.overwrite {
            notes.push("database postgres: empty in the backup, left as the server has it".into());
            continue;
        }
        let one = RestoreOptions {
            database: Some(m.database.clone()),
            ..opts.clone()
        };
        done.push(restore(
            repo,
            snapshot,
            id,
            &server.with_dbname(&m.database),
            &one,
        )?);
    }
    Ok((done, notes))
}

/// The staging name of a restore into `db` (at most 63 bytes, PostgreSQL's
/// limit).
fn staging_name(db: &str) -> String {
    let mut name = format!("lifeboat_restore_{db}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_are_counted_per_table_and_a_cut_archive_is_an_error() {
        let sql = "SET x = 1;\nCOPY public.t (a, b) FROM stdin;\n1\ta\\nb\n2\tc\n\\.\n\nCOPY \"My \"\"S\"\"\".\"T.1\" (a) FROM stdin;\n\\.\nCOPY public.t (a, b) FROM stdin;\n3\td\n\\.\n";
        let c = count_copy_rows(&mut sql.as_bytes()).unwrap();
        assert_eq!(c.get(&("public".into(), "t".into())), Some(&3));
        assert_eq!(c.get(&("My \"S\"".into(), "T.1".into())), Some(&0));
        let cut = "COPY public.t (a) FROM stdin;\n1\n2\n";
        assert!(count_copy_rows(&mut cut.as_bytes()).is_err());
    }

    #[test]
    fn staging_names_fit_postgres_limit() {
        assert_eq!(staging_name("app"), "lifeboat_restore_app");
        assert_eq!(staging_name(&"x".repeat(80)).len(), 63);
    }
}
