//! Reading a `mariadb-dump` script as it streams: rows per table (each
//! `(…)` tuple of an `INSERT INTO … VALUES`, strings and their escapes
//! skipped), tables created empty, the database each `USE` switches to,
//! the binary-log coordinates and GTID `--master-data=2 --gtid` write as
//! comments, and the `-- Dump completed` line that only a dump that ran to
//! its end has.
//!
//! Written by hand: no crate reads SQL dumps as a stream, and only this
//! much of the script's syntax matters.

use std::collections::BTreeMap;
use std::io::{self, Read};

/// What a dump holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpScan {
    /// Rows per (database, table); `default_db` for a dump without `USE`.
    pub rows: BTreeMap<(String, String), u64>,
    /// `MASTER_LOG_FILE` of the dump's consistent point.
    pub binlog_file: Option<String>,
    /// `MASTER_LOG_POS` of the dump's consistent point.
    pub binlog_pos: Option<u64>,
    /// `gtid_slave_pos` of the dump's consistent point.
    pub gtid: Option<String>,
    /// Whether the dump ends with `-- Dump completed`.
    pub completed: bool,
}

/// The start of a line is kept up to this many bytes to tell what it is.
const HEAD: usize = 4096;

enum State {
    /// At a line's start, collecting its head.
    Head,
    /// The rest of a line that is not looked at.
    Skip,
    /// Inside an `INSERT`'s values.
    Values {
        depth: u32,
        quoted: bool,
        escaped: bool,
    },
}

/// Scans a whole dump from `r`; `default_db` is the database of a dump
/// made of one database (no `USE` lines).
pub fn scan(mut r: impl Read, default_db: &str) -> io::Result<DumpScan> {
    let mut out = DumpScan::default();
    let mut db = default_db.to_string();
    let mut table: Option<(String, String)> = None;
    let mut head: Vec<u8> = Vec::with_capacity(HEAD);
    let mut state = State::Head;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut i = 0;
        while i < n {
            let b = buf[i];
            i += 1;
            match &mut state {
                State::Skip => {
                    if b == b'\n' {
                        state = State::Head;
                    }
                }
                State::Head => {
                    // `INSERT INTO `t` VALUES ` then the rows on the same
                    // line, or (MariaDB 10.11's dump) one row per line after it.
                    let values = |h: &[u8]| {
                        h.starts_with(b"INSERT INTO `")
                            && (h.ends_with(b" VALUES ") || (b == b'\n' && h.ends_with(b" VALUES")))
                    };
                    if b == b'\n' && !values(&head) {
                        line(&head, &mut db, &mut out);
                        head.clear();
                        continue;
                    }
                    if b != b'\n' {
                        head.push(b);
                    }
                    if values(&head) {
                        if let Some((name, _)) = ident(&head[b"INSERT INTO ".len()..]) {
                            let key = (db.clone(), name);
                            out.rows.entry(key.clone()).or_insert(0);
                            table = Some(key);
                            state = State::Values {
                                depth: 0,
                                quoted: false,
                                escaped: false,
                            };
                        } else {
                            state = State::Skip;
                        }
                        head.clear();
                    } else if head.len() >= HEAD {
                        head.clear();
                        state = State::Skip;
                    }
                }
                State::Values {
                    depth,
                    quoted,
                    escaped,
                } => {
                    if *quoted {
                        if *escaped {
                            *escaped = false;
                        } else if b == b'\\' {
                            *escaped = true;
                        } else if b == b'\'' {
                            *quoted = false;
                        }
                        continue;
                    }
                    match b {
                        b'\'' => *quoted = true,
                        b'(' => {
                            if *depth == 0 {
                                if let Some(t) = &table {
                                    *out.rows.entry(t.clone()).or_insert(0) += 1;
                                }
                            }
                            *depth += 1;
                        }
                        b')' => *depth = depth.saturating_sub(1),
                        b';' if *depth == 0 => state = State::Skip,
                        _ => {}
                    }
                }
            }
        }
    }
    if matches!(state, State::Values { .. }) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the dump ends inside an INSERT statement",
        ));
    }
    if !head.is_empty() {
        line(&head, &mut db, &mut out);
    }
    Ok(out)
}

/// A whole short line: `USE`, `CREATE TABLE`, and the comments that matter.
fn line(l: &[u8], db: &mut String, out: &mut DumpScan) {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    if let Some(rest) = l.strip_prefix(b"USE ") {
        if let Some((name, _)) = ident(rest) {
            *db = name;
        }
    } else if let Some(rest) = l.strip_prefix(b"CREATE TABLE ") {
        if let Some((name, _)) = ident(rest) {
            out.rows.entry((db.clone(), name)).or_insert(0);
        }
    } else if l.starts_with(b"-- Dump completed") {
        out.completed = true;
    } else if let Some(rest) = l.strip_prefix(b"-- CHANGE MASTER TO ") {
        let s = String::from_utf8_lossy(rest);
        for part in s.trim_end_matches(';').split(',') {
            let (k, v) = match part.trim().split_once('=') {
                Some(kv) => kv,
                None => continue,
            };
            match k {
                "MASTER_LOG_FILE" => out.binlog_file = Some(v.trim_matches('\'').to_string()),
                "MASTER_LOG_POS" => out.binlog_pos = v.parse().ok(),
                _ => {}
            }
        }
    } else if let Some(rest) = l.strip_prefix(b"-- SET GLOBAL gtid_slave_pos=") {
        let s = String::from_utf8_lossy(rest);
        out.gtid = Some(s.trim_end_matches(';').trim_matches('\'').to_string());
    }
}

/// A backquoted identifier at the start of `s` (`` ` `` doubled inside)
/// and what follows it.
fn ident(s: &[u8]) -> Option<(String, &[u8])> {
    let mut rest = s.strip_prefix(b"`")?;
    let mut name = Vec::new();
    loop {
        let i = rest.iter().position(|&b| b == b'`')?;
        name.extend_from_slice(&rest[..i]);
        rest = &rest[i + 1..];
        match rest.strip_prefix(b"`") {
            Some(r) => {
                name.push(b'`');
                rest = r;
            }
            None => return Some((String::from_utf8_lossy(&name).into_owned(), rest)),
        }
    }
}

/// A writer that passes on, of a one-database `mariadb-dump` script, only
/// what restores one table: the script's opening settings, that table's
/// structure, rows and triggers, and the closing settings. The script is
/// cut by the section comments mariadb-dump writes (`-- Table structure for
/// table`, `-- Dumping data for table`, views, routines, events), which
/// always stand on lines of their own: every newline inside a value is
/// written as `\n`.
pub struct OneTable<W: std::io::Write> {
    out: W,
    /// The table as the section comments quote it.
    quoted: String,
    line: Vec<u8>,
    keep: bool,
}

impl<W: std::io::Write> OneTable<W> {
    /// Passes `table`'s part of the script on to `out`.
    pub fn new(out: W, table: &str) -> OneTable<W> {
        OneTable {
            out,
            quoted: format!("`{}`", table.replace('`', "``")),
            line: Vec::new(),
            keep: true,
        }
    }

    fn decide(&mut self) {
        const TABLE: [&[u8]; 2] = [
            b"-- Table structure for table ",
            b"-- Dumping data for table ",
        ];
        const OTHER: [&[u8]; 4] = [
            b"-- Temporary table structure for view ",
            b"-- Final view structure for view ",
            b"-- Dumping routines for database ",
            b"-- Dumping events for database ",
        ];
        let l = self.line.as_slice();
        if let Some(p) = TABLE.iter().find(|p| l.starts_with(p)) {
            let name = l[p.len()..].trim_ascii_end();
            self.keep = name == self.quoted.as_bytes();
        } else if OTHER.iter().any(|p| l.starts_with(p)) {
            self.keep = false;
        } else if l.starts_with(b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;") {
            // The closing settings.
            self.keep = true;
        }
    }
}

impl<W: std::io::Write> std::io::Write for OneTable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..=i]);
            self.decide();
            if self.keep {
                self.out.write_all(&self.line)?;
            }
            self.line.clear();
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.decide();
            if self.keep {
                self.out.write_all(&self.line)?;
            }
            self.line.clear();
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DUMP: &str = "-- MariaDB dump 10.19\n\
        -- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=1234;\n\
        -- SET GLOBAL gtid_slave_pos='0-1-42';\n\
        CREATE TABLE `empty` (\n  `id` int\n);\n\
        CREATE TABLE `t``q` (\n  `id` int\n);\n\
        INSERT INTO `t``q` VALUES (1,'a (b), \\'c\\'; d'),(2,NULL),(3,0x28);\n\
        INSERT INTO `t``q` VALUES\n(4,'x'),\n(5,'y\n');\n\
        USE `other`;\n\
        INSERT INTO `o` VALUES (1);\n\
        -- Dump completed on 2026-12-03 12:00:00\n";

    #[test]
    fn rows_tables_coordinates_and_completion() {
        let s = scan(DUMP.as_bytes(), "shop").unwrap();
        let get = |d: &str, t: &str| s.rows.get(&(d.to_string(), t.to_string())).copied();
        assert_eq!(get("shop", "t`q"), Some(5));
        assert_eq!(get("shop", "empty"), Some(0));
        assert_eq!(get("other", "o"), Some(1));
        assert_eq!(s.binlog_file.as_deref(), Some("mysql-bin.000002"));
        assert_eq!(s.binlog_pos, Some(1234));
        assert_eq!(s.gtid.as_deref(), Some("0-1-42"));
        assert!(s.completed);
        let cut = &DUMP[..DUMP.find("(2,NULL)").unwrap()];
        assert!(
            scan(cut.as_bytes(), "shop").is_err(),
            "ends inside an INSERT"
        );
        let cut = &DUMP[..DUMP.find("-- Dump completed").unwrap()];
        assert!(!scan(cut.as_bytes(), "shop").unwrap().completed);
    }

    proptest! {
        /// Any rows of any strings are counted exactly, however the
        /// stream is cut into reads.
        #[test]
        fn any_rows_are_counted(
            rows in proptest::collection::vec("[ -~]{0,12}", 1..30),
            step in 1usize..50,
            row_per_line in any::<bool>(),
        ) {
            let esc = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
            let values: Vec<String> = rows.iter().enumerate()
                .map(|(i, s)| format!("({i},'{}')", esc(s))).collect();
            let dump = if row_per_line {
                format!("INSERT INTO `t` VALUES\n{};\n-- Dump completed\n", values.join(",\n"))
            } else {
                format!("INSERT INTO `t` VALUES {};\n-- Dump completed\n", values.join(","))
            };
            struct Steps<'a>(&'a [u8], usize);
            impl Read for Steps<'_> {
                fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                    let n = self.0.len().min(self.1).min(b.len());
                    b[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let s = scan(Steps(dump.as_bytes(), step), "db").unwrap();
            prop_assert_eq!(s.rows.get(&("db".to_string(), "t".to_string())).copied(), Some(rows.len() as u64));
            prop_assert!(s.completed);
        }
    }

    #[test]
    fn one_table_keeps_its_structure_rows_and_triggers_and_the_settings() {
        use std::io::Write;
        let dump = "/*!40101 SET NAMES utf8mb4 */;\n--\n-- Table structure for table `audit`\n--\nCREATE TABLE `audit` (n int);\n--\n-- Dumping data for table `audit`\n--\nINSERT INTO `audit` VALUES (1);\n--\n-- Table structure for table `orders`\n--\nCREATE TABLE `orders` (id int);\n--\n-- Dumping data for table `orders`\n--\nINSERT INTO `orders` VALUES (1,'-- Table structure for table `audit`\\n'),(2,'x');\nDELIMITER ;;\nCREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit VALUES (1) */;;\nDELIMITER ;\n--\n-- Dumping routines for database 'shop'\n--\nCREATE PROCEDURE p() SELECT 1;\n/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n-- Dump completed on 2026-12-07\n";
        let mut out = vec![];
        let mut f = OneTable::new(&mut out, "orders");
        // Written in pieces that cut lines anywhere.
        for piece in dump.as_bytes().chunks(7) {
            f.write_all(piece).unwrap();
        }
        f.flush().unwrap();
        drop(f);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("/*!40101 SET NAMES utf8mb4 */;"), "{out}");
        assert!(
            out.contains("CREATE TABLE `orders`") && out.contains("(2,'x')"),
            "{out}"
        );
        assert!(out.contains("CREATE TRIGGER t"), "{out}");
        assert!(
            !out.contains("CREATE TABLE `audit`") && !out.contains("VALUES (1);"),
            "{out}"
        );
        assert!(!out.contains("CREATE PROCEDURE"), "{out}");
        assert!(
            out.contains("SET SQL_MODE=@OLD_SQL_MODE") && out.contains("Dump completed"),
            "{out}"
        );
    }
}
