//! Reading a stream twice at once: a source's bytes go into the repository
//! and, as they pass, to a parser on its own thread that proves them valid
//! and counts what they hold (an RDB file's keys, a dump's rows); and a
//! stored stream read out of the repository into such a parser. The
//! parser pulls with `Read`, so it is written as plain sequential code.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use lifeboat_repo::archiver::SourceFailed;
use lifeboat_repo::tree::Node;
use lifeboat_repo::{browse, IndexedRepository, RepoError};

use crate::error::Result;

/// Buffers in flight between a stream and its parser.
const DEPTH: usize = 16;

/// A reader that hands a copy of every byte it reads to a parser.
pub struct Tee<R> {
    inner: R,
    to_parser: Option<crossbeam_channel::Sender<Vec<u8>>>,
    parser_error: Arc<Mutex<Option<String>>>,
    what: &'static str,
}

/// The parser of a [`Tee`], running.
pub struct Parser<T> {
    thread: JoinHandle<io::Result<T>>,
}

/// Starts `parse` on a thread over a copy of what the returned reader
/// reads from `inner`. A parser that fails stops the reader too, with its
/// error (`what` names the stream: "the server's snapshot is not a valid
/// RDB file: …").
pub fn tee<R, T>(
    inner: R,
    what: &'static str,
    parse: impl FnOnce(ChannelReader) -> io::Result<T> + Send + 'static,
) -> (Tee<R>, Parser<T>)
where
    R: Read,
    T: Send + 'static,
{
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(DEPTH);
    let parser_error = Arc::new(Mutex::new(None));
    let e = parser_error.clone();
    let thread = std::thread::spawn(move || {
        let r = parse(ChannelReader::new(rx));
        if let Err(err) = &r {
            *e.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
        }
        r
    });
    (
        Tee {
            inner,
            to_parser: Some(tx),
            parser_error,
            what,
        },
        Parser { thread },
    )
}

impl<T> Parser<T> {
    /// What the parser found, once the stream was read to its end.
    pub fn finish(self) -> io::Result<T> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("the parser panicked"))?
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.to_parser = None; // the parser sees the end
            return Ok(0);
        }
        if let Some(tx) = &self.to_parser {
            if tx.send(buf[..n].to_vec()).is_err() {
                let why = self
                    .parser_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| "the parser stopped".into());
                return Err(SourceFailed::io(format!("{}: {why}", self.what)));
            }
        }
        Ok(n)
    }
}

/// Reads what a channel of byte buffers carries, until it closes.
pub struct ChannelReader {
    rx: crossbeam_channel::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: crossbeam_channel::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.current = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes into a channel of byte buffers (a failed send: the reader is gone).
struct ChannelWriter(crossbeam_channel::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `consume` over the stored file `node` as it is read out of the
/// repository: the repository's error (damage) as the outer error, else
/// `consume`'s own result.
pub fn read_stored<T>(
    repo: &IndexedRepository,
    node: &Node,
    consume: impl FnOnce(ChannelReader) -> io::Result<T>,
) -> Result<io::Result<T>> {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(DEPTH);
    std::thread::scope(|s| {
        let feeder = s.spawn(move || browse::dump(repo, node, &mut ChannelWriter(tx)));
        let consumed = consume(ChannelReader::new(rx));
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(RepoError::Internal("the feeder panicked".into())));
        match fed {
            // The reader stopped first; the feeder only saw it go.
            Err(RepoError::Io { .. }) if consumed.is_err() => Ok(consumed),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(consumed),
        }
    })
}

/// The stream set of a source whose snapshot is one stream that a parser
/// reads as it is stored (a dump, an RDB file, an xbstream archive): once
/// it is stored, `record` turns what the parser found into the snapshot's
/// metadata — or refuses it — and a stream the parser refused writes no
/// snapshot, in words that start with `what` (`the dump of URL`).
pub struct TeedStream<R, T> {
    reader: Option<Tee<R>>,
    parser: Option<Parser<T>>,
    name: String,
    what: String,
    record: RecordFn<T>,
}

type RecordFn<T> = Box<dyn FnMut(T) -> io::Result<serde_json::Value> + Send>;

impl<R, T> TeedStream<R, T> {
    /// The stream `name`, read through `reader` while `parser` reads it too.
    pub fn new(
        (reader, parser): (Tee<R>, Parser<T>),
        name: String,
        what: String,
        record: impl FnMut(T) -> io::Result<serde_json::Value> + Send + 'static,
    ) -> TeedStream<R, T> {
        TeedStream {
            reader: Some(reader),
            parser: Some(parser),
            name,
            what,
            record: Box::new(record),
        }
    }
}

impl<R: Read + Send + 'static, T: Send + 'static> lifeboat_repo::archiver::StreamSet<'static>
    for TeedStream<R, T>
{
    fn next_stream(&mut self) -> io::Result<Option<lifeboat_repo::archiver::NamedStream<'static>>> {
        Ok(self
            .reader
            .take()
            .map(|r| lifeboat_repo::archiver::NamedStream {
                name: self.name.clone(),
                reader: Box::new(r),
                chunking: lifeboat_repo::chunker::Chunking::ContentDefined,
            }))
    }

    fn finish(&mut self) -> io::Result<Option<serde_json::Value>> {
        let found = self
            .parser
            .take()
            .ok_or_else(|| io::Error::other("finished twice"))?
            .finish()
            .map_err(|e| {
                SourceFailed::io(format!(
                    "{} is not valid: {e}; no snapshot was written",
                    self.what
                ))
            })?;
        (self.record)(found).map(Some)
    }
}
