//! A reader that reads its source on its own thread, one block ahead.
//!
//! A stream (stdin, a database dump) is read by one thread; without this,
//! that thread alternates between the kernel copy of `read` and chunking and
//! hashing, and neither overlaps the other. With it, the copy of the next
//! block runs on the second core while the caller chunks the current one.
//! Memory: at most [`BLOCKS`] blocks of [`BLOCK_SIZE`].
//!
//! Written by hand because no crate offers a scoped, bounded read-ahead
//! over any `Read`; it is two channels and a loop.

use std::io::{self, Read};
use std::thread::Scope;

use crossbeam_channel::{bounded, Receiver, Sender};

/// Bytes per block read ahead.
pub const BLOCK_SIZE: usize = 4 << 20;
/// Blocks in flight: one being consumed, one filled and waiting, one filling.
pub const BLOCKS: usize = 3;

/// A `Read` fed by a thread that reads `source` ahead of the consumer.
///
/// An error of the source is returned by the `read` call that reaches it;
/// dropping the `ReadAhead` stops the thread after its current block.
pub struct ReadAhead {
    filled: Receiver<io::Result<(Vec<u8>, usize)>>,
    empty: Sender<Vec<u8>>,
    current: Vec<u8>,
    /// Bytes of `current` that hold data.
    len: usize,
    pos: usize,
    done: bool,
}

impl ReadAhead {
    /// Starts reading `source` on a thread of `scope`.
    pub fn spawn<'scope, 'env, R: Read + Send + 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        mut source: R,
    ) -> ReadAhead {
        let (filled_tx, filled) = bounded::<io::Result<(Vec<u8>, usize)>>(1);
        let (empty, empty_rx) = bounded::<Vec<u8>>(BLOCKS);
        for _ in 0..BLOCKS - 1 {
            let _ = empty.send(Vec::new());
        }
        scope.spawn(move || {
            // Ends when the source ends or fails, or the consumer is gone.
            while let Ok(mut block) = empty_rx.recv() {
                match fill(&mut source, &mut block) {
                    Ok((len, eof)) => {
                        if len > 0 && filled_tx.send(Ok((block, len))).is_err() {
                            return;
                        }
                        if eof {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = filled_tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        ReadAhead {
            filled,
            empty,
            current: Vec::new(),
            len: 0,
            pos: 0,
            done: false,
        }
    }
}

/// Reads into `block` (sized once, never re-zeroed) until it is full or the
/// source ends; returns the bytes read and whether the source ended.
fn fill(source: &mut impl Read, block: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    if block.len() < BLOCK_SIZE {
        block.resize(BLOCK_SIZE, 0);
    }
    let mut len = 0;
    let eof = loop {
        if len == BLOCK_SIZE {
            break false;
        }
        match source.read(&mut block[len..]) {
            Ok(0) => break true,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    Ok((len, eof))
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.done {
                return Ok(0);
            }
            let spent = std::mem::take(&mut self.current);
            if spent.capacity() > 0 {
                // The thread may have ended; then the block is not needed.
                let _ = self.empty.try_send(spent);
            }
            (self.pos, self.len) = (0, 0);
            match self.filled.recv() {
                Ok(Ok((block, len))) => (self.current, self.len) = (block, len),
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => self.done = true,
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A source that hands out data in uneven pieces and may fail at the end.
    struct Uneven {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        fail_at_end: bool,
    }

    impl Read for Uneven {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return if self.fail_at_end {
                    Err(io::Error::other("source broke"))
                } else {
                    Ok(0)
                };
            }
            let n = out.len().min(self.step).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn read_all(data: Vec<u8>, step: usize, fail_at_end: bool) -> io::Result<Vec<u8>> {
        std::thread::scope(|s| {
            let src = Uneven {
                data,
                pos: 0,
                step,
                fail_at_end,
            };
            let mut r = ReadAhead::spawn(s, src);
            let mut out = vec![];
            r.read_to_end(&mut out).map(|_| out)
        })
    }

    #[test]
    fn streams_larger_than_the_blocks_arrive_whole_and_in_order() {
        let data: Vec<u8> = (0..BLOCK_SIZE * 3 + 12345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        assert_eq!(read_all(data.clone(), 1 << 20, false).unwrap(), data);
    }

    #[test]
    fn an_error_of_the_source_reaches_the_reader() {
        let err = read_all(vec![7; BLOCK_SIZE + 10], 65536, true).unwrap_err();
        assert_eq!(err.to_string(), "source broke");
    }

    #[test]
    fn dropping_the_reader_early_stops_the_thread() {
        /// 1 GiB of ones, counting what was read: a thread that went on
        /// reading after the drop ends the scope late and reads far more
        /// than the few blocks in flight.
        struct Counted<'a>(
            std::io::Take<std::io::Repeat>,
            &'a std::sync::atomic::AtomicUsize,
        );
        impl Read for Counted<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                Ok(n)
            }
        }
        let read = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            let src = Counted(std::io::repeat(1).take(1 << 30), &read);
            let mut r = ReadAhead::spawn(s, src);
            let mut buf = [0u8; 100];
            r.read_exact(&mut buf).unwrap();
            drop(r);
        });
        let n = read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            n <= (BLOCKS + 1) * BLOCK_SIZE,
            "the thread stopped after the blocks in flight, not after {n} bytes"
        );
    }

    proptest! {
        #[test]
        fn any_stream_round_trips(len in 0usize..200_000, step in 1usize..70_000) {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            prop_assert_eq!(read_all(data.clone(), step, false).unwrap(), data);
        }
    }
}
