//! Redis (`redis://[USER@]HOST[:PORT]`): the server's RDB snapshot,
//! received as a replica receives it (`PSYNC`, so the server forks and
//! streams a point-in-time copy without blocking its clients; AOF-only
//! servers too, since replication always sends RDB), read by [`rdb`] on
//! the way into the repository: keys counted per database, the file's
//! CRC-64 checked. A snapshot is written only when the whole file parsed
//! and its checksum matched.
//!
//! The password comes from the URL or, as for `redis-cli`, from
//! `REDISCLI_AUTH`; it is never shown.
//!
//! A restore loads the keys into an empty server with `RESTORE` (each
//! value as the `DUMP` payload [`rdb`] cuts out, expiries as absolute
//! times), or writes the file (`--target DIR`) for `redis-server` to start
//! on; `--validate-only` reads the stored file through [`rdb`] and
//! compares its counts.

pub mod rdb;
pub mod resp;
mod restore;

use std::fmt;

use lifeboat_repo::archiver::StreamSet;
use lifeboat_repo::Snapshot;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SourceError};

pub use restore::restore;

/// The URL scheme.
pub const SCHEME: &str = "redis";
/// The TLS scheme (refused for now).
pub const TLS_SCHEME: &str = "rediss";

/// A parsed `redis://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// An ACL user.
    pub user: Option<String>,
    /// The password, never shown.
    pub password: Option<String>,
    /// Host name or address.
    pub host: String,
    /// Port (6379 unless given).
    pub port: u16,
}

impl fmt::Display for RedisUrl {
    /// The URL as it may be shown: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

impl RedisUrl {
    /// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`. A database
    /// number is refused: a snapshot always holds every database.
    pub fn parse(s: &str) -> Result<RedisUrl> {
        let shown = crate::url::redact(s);
        let bad = |why: &str| SourceError::Usage(format!("invalid URL {shown}: {why}"));
        if s.starts_with("rediss://") {
            return Err(bad(
                "TLS (rediss://) is not supported yet: reach the server through a local TLS tunnel (stunnel, spiped) and give its redis:// address",
            ));
        }
        let rest = s
            .strip_prefix("redis://")
            .ok_or_else(|| bad("expected redis://HOST:PORT"))?;
        if rest.contains('?') {
            return Err(bad("redis URLs take no parameters"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !path.is_empty() {
            return Err(bad(
                "a snapshot holds every database of the server: leave the database number out",
            ));
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let dec = |x: &str| crate::url::decode(x).map_err(|e| bad(&e));
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| dec(u)).transpose()?, Some(dec(p)?)),
                None => (Some(dec(ui)?), None),
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address lacks its ']'"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad(&format!("invalid port {p:?}")))?,
            None => 6379,
        };
        Ok(RedisUrl {
            user,
            password,
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port,
        })
    }
}

/// Keys of one database, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCount {
    /// Database number.
    pub db: u64,
    /// Keys.
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
}

/// What a Redis backup records in its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisMeta {
    /// Always `redis`.
    pub kind: String,
    /// The server, as shown.
    pub url: String,
    /// The stream holding the RDB file.
    pub file: String,
    /// The server's version (`redis-ver` in the file).
    pub redis_version: String,
    /// The RDB format version.
    pub rdb_version: u32,
    /// The replication id the snapshot belongs to.
    pub replid: Option<String>,
    /// The replication offset the snapshot is at: its recovery point.
    pub offset: Option<u64>,
    /// Keys per database.
    pub databases: Vec<DbCount>,
    /// Function libraries.
    pub functions: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Whether the file carried a checksum, and it matched.
    pub checksum_verified: bool,
}

impl RedisMeta {
    /// The metadata of a snapshot, if it is a Redis backup.
    pub fn of(snapshot: &Snapshot) -> Option<RedisMeta> {
        let m: RedisMeta = serde_json::from_value(snapshot.source.clone()?).ok()?;
        (m.kind == SCHEME).then_some(m)
    }

    /// Keys in all databases.
    pub fn keys(&self) -> u64 {
        self.databases.iter().map(|d| d.keys).sum()
    }
}

/// A Redis server to back up.
pub struct RedisSource {
    url: RedisUrl,
}

impl RedisSource {
    /// The source a `redis://` URL names.
    pub fn open(url: &str) -> Result<RedisSource> {
        Ok(RedisSource {
            url: RedisUrl::parse(url)?,
        })
    }
}

impl crate::Source for RedisSource {
    fn display(&self) -> String {
        self.url.to_string()
    }

    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        let conn = resp::Conn::connect(&self.url)?;
        let (replid, offset, transfer) = conn.full_sync()?;
        let teed = crate::tee::tee(
            transfer,
            "the server's snapshot is not a valid RDB file",
            |r| rdb::read(r, false, |_| Ok(())),
        );
        let mut meta = RedisMeta {
            kind: SCHEME.into(),
            url: self.url.to_string(),
            file: "dump.rdb".into(),
            redis_version: String::new(),
            rdb_version: 0,
            replid,
            offset,
            databases: vec![],
            functions: 0,
            bytes: 0,
            checksum_verified: false,
        };
        Ok(Box::new(crate::tee::TeedStream::new(
            teed,
            meta.file.clone(),
            format!("the RDB snapshot of {}", self.url),
            move |summary: rdb::Summary| {
                meta.redis_version = summary.redis_version;
                meta.rdb_version = summary.version;
                meta.databases = summary
                    .dbs
                    .iter()
                    .map(|(&db, k)| DbCount {
                        db,
                        keys: k.keys,
                        expires: k.expires,
                    })
                    .collect();
                meta.functions = summary.functions;
                meta.bytes = summary.bytes;
                meta.checksum_verified = summary.checksum_verified;
                serde_json::to_value(&meta).map_err(std::io::Error::other)
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_and_mistakes() {
        let u = RedisUrl::parse("redis://app:s3cr%40t@cache.internal:6380").unwrap();
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s3cr@t"));
        assert_eq!((u.host.as_str(), u.port), ("cache.internal", 6380));
        assert_eq!(u.to_string(), "redis://app@cache.internal:6380");
        assert!(!format!("{u:?}").contains("s3cr"));
        let p = RedisUrl::parse("redis://:pw@10.0.0.5").unwrap();
        assert_eq!(
            (p.user, p.password.as_deref(), p.port),
            (None, Some("pw"), 6379)
        );
        assert_eq!(
            RedisUrl::parse("redis://[::1]:7000").unwrap().to_string(),
            "redis://[::1]:7000"
        );
        assert_eq!(RedisUrl::parse("redis://").unwrap().host, "localhost");
        for (bad, why) in [
            ("rediss://h:1", "TLS"),
            ("redis://:hunter2@h/2", "every database"),
            ("redis://:hunter2@h:port", "invalid port"),
            ("redis://h?db=1", "no parameters"),
        ] {
            let e = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
