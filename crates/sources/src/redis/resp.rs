//! A Redis connection speaking RESP: commands and replies, pipelined, and
//! the replica's side of a full synchronisation (`PSYNC ? -1`), whose
//! answer is the server's RDB snapshot.
//!
//! Written by hand: the `redis` crate has no way to receive a replication
//! stream, and the few commands a backup and a restore need are simple.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::RedisUrl;
use crate::error::{Result, SourceError};

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read may wait. A server preparing a snapshot on disk sends a
/// newline every second meanwhile, so this is only ever reached when the
/// server or the network is gone.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// The end-of-snapshot mark of a diskless transfer is this long.
const EOF_MARK_LEN: usize = 40;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR …`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$…` (`None`: nil)
    Bulk(Option<Vec<u8>>),
    /// `*…` (`None`: nil)
    Array(Option<Vec<Reply>>),
}

/// A connection to one server.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: io::BufWriter<TcpStream>,
    shown: String,
}

impl Conn {
    /// Connects to the server `url` names and authenticates (the URL's
    /// password, else `REDISCLI_AUTH`).
    pub fn connect(url: &RedisUrl) -> Result<Conn> {
        let shown = url.to_string();
        let fail = |message: String| SourceError::Tool {
            program: "redis".into(),
            target: shown.clone(),
            message,
        };
        let addrs: Vec<_> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve {}: {e}", url.host)))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            fail(format!(
                "cannot connect: {}",
                last.map_or("no address".into(), |e| lifeboat_repo::error::io_words(&e))
            ))
        })?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| fail(e.to_string()))?;
        let writer = stream.try_clone().map_err(|e| fail(e.to_string()))?;
        let mut conn = Conn {
            reader: BufReader::with_capacity(1 << 20, stream),
            writer: io::BufWriter::with_capacity(1 << 20, writer),
            shown: shown.clone(),
        };
        let password = url.password.clone().or_else(|| {
            std::env::var("REDISCLI_AUTH")
                .ok()
                .filter(|p| !p.is_empty())
        });
        if let Some(pw) = password {
            let reply = match &url.user {
                Some(u) => conn.command(&[b"AUTH", u.as_bytes(), pw.as_bytes()])?,
                None => conn.command(&[b"AUTH", pw.as_bytes()])?,
            };
            if let Reply::Error(e) = reply {
                return Err(fail(format!("authentication failed: {e}")));
            }
        }
        // Any command tells a server that wants a password.
        if let Reply::Error(e) = conn.command(&[b"PING"])? {
            return Err(fail(if e.starts_with("NOAUTH") {
                format!("{e} (give the password in REDISCLI_AUTH)")
            } else {
                e
            }));
        }
        Ok(conn)
    }

    fn io(&self, e: io::Error) -> SourceError {
        SourceError::Tool {
            program: "redis".into(),
            target: self.shown.clone(),
            message: if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut
            {
                format!("no answer for {}s", READ_TIMEOUT.as_secs())
            } else {
                lifeboat_repo::error::io_words(&e)
            },
        }
    }

    /// The error of a command the server refused.
    pub fn refused(&self, what: &str, e: &str) -> SourceError {
        SourceError::Tool {
            program: "redis".into(),
            target: self.shown.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// Queues a command (sent at the next [`Conn::flush`] or reply read).
    pub fn send(&mut self, args: &[&[u8]]) -> Result<()> {
        let w = &mut self.writer;
        let r = (|| {
            write!(w, "*{}\r\n", args.len())?;
            for a in args {
                write!(w, "${}\r\n", a.len())?;
                w.write_all(a)?;
                w.write_all(b"\r\n")?;
            }
            Ok(())
        })();
        r.map_err(|e| self.io(e))
    }

    /// Sends what is queued.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| self.io(e))
    }

    /// Sends one command and reads its reply.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.send(args)?;
        self.reply()
    }

    /// Reads the next reply (sending what is queued first).
    pub fn reply(&mut self) -> Result<Reply> {
        self.flush()?;
        read_reply(&mut self.reader).map_err(|e| self.io(e))
    }

    /// Starts a full synchronisation as a replica does, asking for the
    /// snapshot alone (`rdb-only`, Redis 7; older servers send the
    /// replication stream after it, which is never read). Returns the
    /// replication id and offset the snapshot is at, and the snapshot.
    pub fn full_sync(mut self) -> Result<(Option<String>, Option<u64>, RdbTransfer)> {
        // The snapshot streamed from memory when the server allows it.
        self.command(&[b"REPLCONF", b"capa", b"eof"])?;
        self.command(&[b"REPLCONF", b"rdb-only", b"1"])?;
        self.send(&[b"PSYNC", b"?", b"-1"])?;
        self.flush()?;
        let mut replid = None;
        let mut offset = None;
        loop {
            let line = read_line(&mut self.reader).map_err(|e| self.io(e))?;
            if line.is_empty() {
                continue; // keepalive while the server prepares the snapshot
            }
            if let Some(rest) = line.strip_prefix(b"+FULLRESYNC ") {
                let rest = String::from_utf8_lossy(rest);
                let mut parts = rest.split(' ');
                replid = parts.next().map(str::to_string);
                offset = parts.next().and_then(|o| o.parse().ok());
                continue;
            }
            if let Some(e) = line.strip_prefix(b"-") {
                return Err(self.refused(
                    "the server refused to send a snapshot (PSYNC; an ACL user needs +psync and +replconf)",
                    &String::from_utf8_lossy(e),
                ));
            }
            if let Some(size) = line.strip_prefix(b"$") {
                let body = if let Some(mark) = size.strip_prefix(b"EOF:") {
                    if mark.len() != EOF_MARK_LEN {
                        return Err(self.refused(
                            "an unexpected answer to PSYNC",
                            &String::from_utf8_lossy(&line),
                        ));
                    }
                    Body::Marked {
                        mark: mark.to_vec(),
                        pending: Vec::new(),
                        start: 0,
                        done: false,
                    }
                } else {
                    let n = std::str::from_utf8(size)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| {
                            self.refused(
                                "an unexpected answer to PSYNC",
                                &String::from_utf8_lossy(&line),
                            )
                        })?;
                    Body::Sized(n)
                };
                return Ok((
                    replid,
                    offset,
                    RdbTransfer {
                        reader: self.reader,
                        body,
                        _writer: self.writer,
                    },
                ));
            }
            if line.starts_with(b"+") {
                continue; // +CONTINUE and the like never come for "?"; ignore other status lines
            }
            return Err(self.refused(
                "an unexpected answer to PSYNC",
                &String::from_utf8_lossy(&line),
            ));
        }
    }
}

enum Body {
    /// A snapshot of known size (written to the server's disk first).
    Sized(u64),
    /// A diskless snapshot, ended by a random 40-byte mark that is held
    /// back until the end is known.
    Marked {
        mark: Vec<u8>,
        pending: Vec<u8>,
        /// Where in `pending` the bytes not yet handed out start.
        start: usize,
        done: bool,
    },
}

/// The snapshot as it arrives: exactly the RDB file's bytes.
pub struct RdbTransfer {
    reader: BufReader<TcpStream>,
    body: Body,
    // Kept open: closing our side would end the transfer.
    _writer: io::BufWriter<TcpStream>,
}

impl Read for RdbTransfer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.body {
            Body::Sized(left) => {
                if *left == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the server closed the connection with {left} bytes of the snapshot to come"),
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
            Body::Marked {
                mark,
                pending,
                start,
                done,
            } => loop {
                // Everything but the last 40 bytes may go out.
                let end = if *done {
                    pending.len()
                } else {
                    pending.len().saturating_sub(EOF_MARK_LEN)
                };
                if *start < end {
                    let n = (end - *start).min(buf.len());
                    buf[..n].copy_from_slice(&pending[*start..*start + n]);
                    *start += n;
                    return Ok(n);
                }
                if *done {
                    return Ok(0);
                }
                // Only the held-back tail is left: keep it, read on.
                pending.drain(..*start);
                *start = 0;
                let got = self.reader.fill_buf()?;
                if got.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection before the end of the snapshot",
                    ));
                }
                let n = got.len();
                pending.extend_from_slice(got);
                self.reader.consume(n);
                if pending.ends_with(mark) {
                    pending.truncate(pending.len() - EOF_MARK_LEN);
                    *done = true;
                }
            },
        }
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a malformed reply {:?}", String::from_utf8_lossy(&line)),
        )
    };
    let (&kind, rest) = line.split_first().ok_or_else(bad)?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    let num = || -> io::Result<i64> {
        std::str::from_utf8(rest)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    Ok(match kind {
        b'+' => Reply::Simple(text()),
        b'-' => Reply::Error(text()),
        b':' => Reply::Int(num()?),
        b'$' => match num()? {
            n if n < 0 => Reply::Bulk(None),
            n => {
                let mut v = Vec::new();
                r.take(n as u64 + 2).read_to_end(&mut v)?;
                if v.len() != n as usize + 2 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection mid-reply",
                    ));
                }
                v.truncate(n as usize);
                Reply::Bulk(Some(v))
            }
        },
        b'*' => match num()? {
            n if n < 0 => Reply::Array(None),
            n => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?,
            )),
        },
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        let mut input: &[u8] =
            b"+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n";
        let mut r = BufReader::new(&mut input);
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Simple("OK".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Error("ERR no".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Int(42));
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Bulk(None));
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(Some(vec![]))]))
        );
        assert!(read_reply(&mut r).is_err(), "the end");
        let mut short: &[u8] = b"$10\r\nabc";
        assert!(read_reply(&mut BufReader::new(&mut short)).is_err());
    }
}
