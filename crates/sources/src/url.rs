//! Connection URLs in libpq's form (`postgres://user:pw@host:port,host2/db?k=v`).
//!
//! Written by hand: the `url` crate rejects libpq's multi-host form and has
//! no notion of which parameters are secret. A parsed URL is handed to
//! libpq programs as environment variables (`PGHOST`, `PGPASSWORD`, …),
//! never as arguments, so no secret reaches the process list; and it is
//! shown only by [`ConnUrl::display`], which leaves the password out.

use std::fmt;

use crate::error::{Result, SourceError};

/// A password, kept out of `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that hands it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The query parameters libpq knows, with the environment variable each
/// maps to. Anything else is refused: a typo must not be ignored silently.
const PARAMS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("service", "PGSERVICE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("sslmode", "PGSSLMODE"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcrl", "PGSSLCRL"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("gssencmode", "PGGSSENCMODE"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
];

/// A parsed connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnUrl {
    /// The scheme as given (`postgres`, `postgresql`).
    pub scheme: String,
    /// User name.
    pub user: Option<String>,
    /// Password (from the URL itself; libpq also reads `PGPASSWORD` and
    /// `~/.pgpass` on its own).
    pub password: Option<Secret>,
    /// Hosts (a name, an address, or a socket directory) with their ports.
    pub hosts: Vec<(String, Option<u16>)>,
    /// Database name.
    pub dbname: Option<String>,
    /// Query parameters other than the password, in order.
    pub params: Vec<(String, String)>,
}

impl ConnUrl {
    /// Parses `s`, whose scheme must be one of `schemes`.
    pub fn parse(s: &str, schemes: &[&str]) -> Result<ConnUrl> {
        let bad = |why: &str| SourceError::Usage(format!("invalid URL {}: {why}", redact(s)));
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://…"))?;
        if !schemes.contains(&scheme) {
            return Err(bad(&format!("the scheme must be {}", schemes.join(" or "))));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let mut url = ConnUrl {
            scheme: scheme.to_string(),
            user: None,
            password: None,
            hosts: vec![],
            dbname: None,
            params: vec![],
        };
        if let Some(ui) = userinfo {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            if !u.is_empty() {
                url.user = Some(decode(u).map_err(|e| bad(&e))?);
            }
            if let Some(p) = p {
                url.password = Some(Secret(decode(p).map_err(|e| bad(&e))?));
            }
        }
        if !hostlist.is_empty() {
            for h in hostlist.split(',') {
                url.hosts.push(parse_host(h).map_err(|e| bad(&e))?);
            }
        }
        if let Some(db) = path.filter(|p| !p.is_empty()) {
            url.dbname = Some(decode(db).map_err(|e| bad(&e))?);
        }
        for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(&format!("parameter {kv:?} has no value")))?;
            let (k, v) = (
                decode(k).map_err(|e| bad(&e))?,
                decode(v).map_err(|e| bad(&e))?,
            );
            if !PARAMS.iter().any(|(name, _)| *name == k) {
                return Err(bad(&format!("unknown parameter {k:?}")));
            }
            match k.as_str() {
                "password" => url.password = Some(Secret(v)),
                "user" => url.user = Some(v),
                "dbname" => url.dbname = Some(v),
                _ => url.params.push((k, v)),
            }
        }
        Ok(url)
    }

    /// The same URL naming another database.
    pub fn with_dbname(&self, db: &str) -> ConnUrl {
        ConnUrl {
            dbname: Some(db.to_string()),
            ..self.clone()
        }
    }

    /// The environment for a libpq program to connect as this URL says:
    /// what the URL leaves out, libpq takes from our own environment.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![];
        if !self.hosts.is_empty() {
            let hosts: Vec<&str> = self.hosts.iter().map(|(h, _)| h.as_str()).collect();
            env.push(("PGHOST", hosts.join(",")));
            if self.hosts.iter().any(|(_, p)| p.is_some()) {
                let ports: Vec<String> = self
                    .hosts
                    .iter()
                    .map(|(_, p)| p.map(|p| p.to_string()).unwrap_or_default())
                    .collect();
                env.push(("PGPORT", ports.join(",")));
            }
        }
        if let Some(u) = &self.user {
            env.push(("PGUSER", u.clone()));
        }
        if let Some(d) = &self.dbname {
            env.push(("PGDATABASE", d.clone()));
        }
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.expose().to_string()));
        }
        for (k, v) in &self.params {
            if let Some((_, var)) = PARAMS.iter().find(|(name, _)| name == k) {
                env.push((var, v.clone()));
            }
        }
        env
    }
}

impl fmt::Display for ConnUrl {
    /// The URL as it may be shown: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{}@", encode(u))?;
        }
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(h, p)| {
                let h = if h.contains(':') && !h.starts_with('/') {
                    format!("[{h}]")
                } else {
                    encode_host(h)
                };
                match p {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                }
            })
            .collect();
        f.write_str(&hosts.join(","))?;
        if let Some(d) = &self.dbname {
            write!(f, "/{}", encode(d))?;
        }
        for (i, (k, v)) in self.params.iter().enumerate() {
            write!(
                f,
                "{}{}={}",
                if i == 0 { '?' } else { '&' },
                encode(k),
                encode(v)
            )?;
        }
        Ok(())
    }
}

/// `s` with any password replaced, for error messages about a URL that
/// did not parse.
pub fn redact(s: &str) -> String {
    let mut out = s.to_string();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@').map(|i| start + i) {
            if let Some(colon) = out[start..at].find(':').map(|i| start + i) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let end = out[i..].find('&').map_or(out.len(), |j| i + j);
        out.replace_range(i + "password=".len()..end, "***");
    }
    out
}

fn parse_host(h: &str) -> std::result::Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address lacks its ']'")?;
        (addr.to_string(), after.strip_prefix(':'))
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (decode(host)?, Some(port)),
            None => (decode(h)?, None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("invalid port {p:?}"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

/// `s` with its `%XX` escapes decoded.
pub(crate) fn decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or("a '%' is not followed by two hex digits")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("invalid escape %{hex}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "an escape does not decode to UTF-8".to_string())
}

/// Percent-encodes `s`, leaving a socket directory's `/` as it is.
fn encode_host(s: &str) -> String {
    encode_keeping(s, s.starts_with('/'))
}

fn encode(s: &str) -> String {
    encode_keeping(s, false)
}

fn encode_keeping(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (b == b'/' && keep_slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PG: &[&str] = &["postgres", "postgresql"];

    #[test]
    fn libpq_forms() {
        let u = ConnUrl::parse(
            "postgres://app:s3cr%40t@db1:5433,db2/orders?sslmode=require",
            PG,
        )
        .unwrap();
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("s3cr@t"));
        assert_eq!(u.hosts, [("db1".into(), Some(5433)), ("db2".into(), None)]);
        assert_eq!(u.dbname.as_deref(), Some("orders"));
        let env = u.env();
        assert!(env.contains(&("PGPORT", "5433,".into())), "{env:?}");
        assert!(env.contains(&("PGSSLMODE", "require".into())));
        assert!(env.contains(&("PGPASSWORD", "s3cr@t".into())));
        assert_eq!(
            u.to_string(),
            "postgres://app@db1:5433,db2/orders?sslmode=require"
        );

        let s = ConnUrl::parse("postgresql:///app?host=/run/postgresql&port=5499", PG).unwrap();
        assert!(s.hosts.is_empty());
        assert!(s.env().contains(&("PGHOST", "/run/postgresql".into())));
        assert_eq!(s.dbname.as_deref(), Some("app"));
        let v6 = ConnUrl::parse("postgres://[::1]:5432/x", PG).unwrap();
        assert_eq!(v6.hosts, [("::1".into(), Some(5432))]);
        assert_eq!(v6.to_string(), "postgres://[::1]:5432/x");
    }

    #[test]
    fn mistakes_are_named_and_never_show_the_password() {
        for (bad, why) in [
            ("mysql://h/db", "scheme"),
            ("postgres://u:hunter2@h:port/db", "invalid port"),
            (
                "postgres://u:hunter2@h/db?sslmod=require",
                "unknown parameter \"sslmod\"",
            ),
            ("postgres://u:hunter2@h/db?x", "has no value"),
            ("postgres://u:hunter2@h/%zz", "invalid escape"),
        ] {
            let e = ConnUrl::parse(bad, PG).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = ConnUrl::parse("postgres://h/db?password=hunter2&sslmod=x", PG).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let u = ConnUrl::parse("postgres://u:hunter2@h/db?password=hunter3", PG).unwrap();
        assert!(!u.to_string().contains("hunter") && !format!("{u:?}").contains("hunter"));
    }

    proptest! {
        /// What is shown parses back to the same URL (less the password).
        #[test]
        fn display_parses_back(
            user in proptest::option::of("[a-zA-Z0-9_@:%/ é-]{1,12}"),
            password in proptest::option::of("[ -~]{0,12}"),
            hosts in proptest::collection::vec(("[a-z0-9.-]{1,12}", proptest::option::of(1u16..)), 0..3),
            dbname in proptest::option::of("[a-zA-Z0-9_/?&=% -]{1,12}"),
            sslmode in proptest::option::of("[a-z-]{1,10}"),
        ) {
            let url = ConnUrl {
                scheme: "postgres".into(),
                user,
                password: password.map(Secret),
                hosts,
                dbname,
                params: sslmode.into_iter().map(|m| ("sslmode".to_string(), m)).collect(),
            };
            let shown = url.to_string();
            let back = ConnUrl::parse(&shown, PG).unwrap();
            prop_assert_eq!(back, ConnUrl { password: None, ..url });
        }

        /// No input panics the parser.
        #[test]
        fn any_input_parses_or_errs(s in "postgres://[ -~]{0,40}") {
            let _ = ConnUrl::parse(&s, PG);
            let _ = redact(&s);
        }
    }
}
