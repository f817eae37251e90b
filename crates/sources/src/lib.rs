//! lifeboat's sources: how each kind of data is read out into a repository
//! and written back. A source produces named streams (or trees) plus
//! metadata for the snapshot, through the repository's
//! [`StreamSet`](lifeboat_repo::archiver::StreamSet) seam; the repository
//! learns nothing about databases.
//!
//! Sources and targets are addressed by URL (`postgres://user@host/db`),
//! the forms plan files use too. Passwords reach the programs a source
//! drives through their environment, never their arguments, and are never
//! shown.

pub mod error;
pub mod postgres;
pub mod producer;
pub mod url;

use lifeboat_repo::archiver::StreamSet;

pub use error::{Result, SourceError};
pub use url::ConnUrl;

/// One kind of data that lifeboat backs up and restores.
pub trait Source: Send {
    /// The source as it may be shown (no password).
    fn display(&self) -> String;
    /// Starts a backup: the streams to store, and the snapshot's metadata
    /// once they were read in full.
    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>>;
}

/// A PostgreSQL database, backed up logically.
pub struct PostgresLogical {
    url: ConnUrl,
}

impl Source for PostgresLogical {
    fn display(&self) -> String {
        self.url.to_string()
    }
    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        // No database named: every database, and the roles and other globals.
        Ok(match self.url.dbname {
            Some(_) => Box::new(postgres::LogicalBackup::start(&self.url)?),
            None => Box::new(postgres::ClusterBackup::start(&self.url)?),
        })
    }
}

/// A PostgreSQL cluster, backed up physically (a base backup).
pub struct PostgresPhysical {
    url: ConnUrl,
}

impl Source for PostgresPhysical {
    fn display(&self) -> String {
        self.url.to_string()
    }
    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        Ok(Box::new(postgres::physical::PhysicalBackup::start(
            &self.url,
        )?))
    }
}

/// How a source is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceOptions {
    /// A database's files rather than a logical dump (PostgreSQL: a base backup).
    pub physical: bool,
}

/// The source a URL names.
pub fn open(url: &str, opts: SourceOptions) -> Result<Box<dyn Source>> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    if postgres::SCHEMES.contains(&scheme) {
        let url = ConnUrl::parse(url, postgres::SCHEMES)?;
        return Ok(if opts.physical {
            Box::new(PostgresPhysical { url })
        } else {
            Box::new(PostgresLogical { url })
        });
    }
    Err(SourceError::Usage(format!(
        "unsupported source {}: use postgres://USER@HOST:PORT/DBNAME",
        url::redact(url)
    )))
}

/// Whether `s` is a source or target URL rather than a path.
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
    })
}
