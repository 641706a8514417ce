//! Where capture bytes come from: a memory-mapped file, or a pipe read into
//! a small pool of reusable buffers. Both are framed by the same
//! [`Framer`] into batches of record descriptors that borrow nothing but
//! their chunk, so parser workers can dissect them on other threads.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use memmap2::Mmap;

use crate::capture::{DetectError, Frame, Framer, RecordMeta, RunLimits};
use crate::stats::Counters;

/// A batch holds at most this many records...
pub const BATCH_RECORDS: usize = 4096;
/// ...or this many bytes of a mapped file.
pub const BATCH_BYTES: usize = 1 << 20;
/// The size of each pipe buffer; a larger record grows its buffer.
pub const PIPE_BUFFER: usize = 1 << 20;
/// Pipe buffers in circulation: bounds memory whatever the capture's length.
pub const PIPE_BUFFERS: usize = 8;
/// How long a quiet pipe is waited on for more before what was read is
/// handed over: the most a record waits in the reader.
pub const COALESCE: Duration = Duration::from_millis(50);

/// The bytes of one batch: a window of the mapped file, or an owned buffer.
pub enum Chunk {
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        end: usize,
    },
    Owned {
        buf: Vec<u8>,
        len: usize,
    },
}

impl Chunk {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Mapped { map, start, end } => map.get(*start..*end).unwrap_or(&[]),
            Chunk::Owned { buf, len } => buf.get(..*len).unwrap_or(&[]),
        }
    }
}

/// Records framed by the reader, in capture order by `seq`.
pub struct Batch {
    pub seq: u64,
    /// Byte offset in the input just past this batch's records.
    pub end_offset: u64,
    pub chunk: Chunk,
    pub records: Vec<RecordMeta>,
    pub counters: Counters,
}

/// What the workers give back to the reader.
pub struct Spares {
    pub buffers: Receiver<Vec<u8>>,
    pub records: Receiver<Vec<RecordMeta>>,
    /// Size and number of pipe buffers (tests and fuzzing use small ones).
    pub buffer_size: usize,
    pub buffer_count: usize,
    /// One token per batch between the reader and the aggregator, given
    /// back once the batch is applied: bounds the batches in flight (and so
    /// the aggregator's reordering) whatever the threads' scheduling.
    pub tokens: Option<Receiver<()>>,
}

impl Spares {
    pub fn new(buffers: Receiver<Vec<u8>>, records: Receiver<Vec<RecordMeta>>) -> Self {
        Spares {
            buffers,
            records,
            buffer_size: PIPE_BUFFER,
            buffer_count: PIPE_BUFFERS,
            tokens: None,
        }
    }

    /// Sends a batch once a token allows it; false when the run is over.
    fn dispatch(&self, sink: &Sender<Batch>, batch: Batch) -> bool {
        self.tokens.as_ref().is_none_or(|t| t.recv().is_ok()) && sink.send(batch).is_ok()
    }

    fn records(&self) -> Vec<RecordMeta> {
        match self.records.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(256),
        }
    }
}

/// How reading ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// The capture ends inside a record: a live capture cut off.
    CutOff {
        offset: u64,
        bytes: u64,
    },
    /// Bytes that cannot be a record at `offset`.
    Damaged {
        offset: u64,
        what: String,
    },
    /// A record of a kind connbal cannot read (exit status 2).
    Unsupported {
        offset: u64,
        what: String,
    },
    /// A signal stopped the run.
    Stopped,
    /// Reading failed.
    ReadError(String),
}

/// An input, opened and recognised.
pub struct Source {
    pub label: String,
    pub framer: Framer,
    kind: SourceKind,
}

enum SourceKind {
    Mapped {
        map: Arc<Mmap>,
        header_len: usize,
    },
    Stream {
        reader: Box<dyn Stream>,
        head: Vec<u8>,
        header_len: usize,
    },
}

/// A byte stream that can tell whether more bytes are waiting, so that the
/// reader fills big batches under load and hands over soon after the pipe
/// goes quiet.
pub trait Stream: Read + Send {
    /// Waits at most `timeout` (zero: not at all) for bytes to read (or
    /// the end); whether there are some.
    fn wait_ready(&self, _timeout: Duration) -> bool {
        false
    }

    /// What waits in the pipe, where the system tells.
    fn backlog(&self) -> Option<Backlog> {
        None
    }
}

/// What waits in a pipe.
#[derive(Clone, Copy, Debug)]
pub struct Backlog {
    /// Bytes waiting to be read.
    pub waiting: usize,
    /// Bytes the pipe holds at most.
    pub capacity: usize,
    /// The writer has closed its end: what waits is all there will be.
    pub closed: bool,
}

/// Any reader, with no way to look ahead (tests, in-memory input).
struct Plain<R>(R);

impl<R: Read> Read for Plain<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + Send> Stream for Plain<R> {}

/// Standard input or a FIFO: polled for readiness; a pipe's buffer is
/// raised to 1 MiB where the system allows (fewer, larger reads).
struct Fd<T>(T);

impl<T: Read + AsFd> Fd<T> {
    fn new(inner: T) -> Self {
        #[cfg(target_os = "linux")]
        let _ = rustix::pipe::fcntl_setpipe_size(&inner, PIPE_BUFFER);
        Fd(inner)
    }
}

impl<T: Read> Read for Fd<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<T: AsFd> Fd<T> {
    /// Polls for input for at most `timeout`: the events seen, if any
    /// (`None` when the call failed).
    fn poll_in(&self, timeout: Duration) -> Option<rustix::event::PollFlags> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        poll(&mut fds, Some(&timeout)).ok()?;
        fds.first().map(PollFd::revents)
    }
}

impl<T: Read + AsFd + Send> Stream for Fd<T> {
    fn wait_ready(&self, timeout: Duration) -> bool {
        self.poll_in(timeout).is_some_and(|events| !events.is_empty())
    }

    #[cfg(target_os = "linux")]
    fn backlog(&self) -> Option<Backlog> {
        use rustix::event::PollFlags;
        let capacity = rustix::pipe::fcntl_getpipe_size(&self.0).ok()?;
        let waiting = usize::try_from(rustix::io::ioctl_fionread(&self.0).ok()?).ok()?;
        let closed = self
            .poll_in(Duration::ZERO)?
            .intersects(PollFlags::HUP | PollFlags::ERR);
        Some(Backlog {
            waiting,
            capacity,
            closed,
        })
    }
}

#[derive(Debug)]
pub enum OpenError {
    /// The file cannot be opened or read (exit status 1).
    Io(String),
    /// Not a supported capture (exit status 2).
    Format(String),
}

impl Source {
    /// Opens `path`, or standard input for `None` or `-`.
    pub fn open(path: Option<&Path>) -> Result<Source, OpenError> {
        match path {
            None => Self::stream("standard input".into(), Box::new(Fd::new(io::stdin()))),
            Some(p) if p == Path::new("-") => {
                Self::stream("standard input".into(), Box::new(Fd::new(io::stdin())))
            }
            Some(p) => {
                let label = p.display().to_string();
                let file = File::open(p).map_err(|e| OpenError::Io(format!("{label}: {}", io_text(&e))))?;
                let meta = file
                    .metadata()
                    .map_err(|e| OpenError::Io(format!("{label}: {}", io_text(&e))))?;
                if meta.is_dir() {
                    return Err(OpenError::Io(format!("{label}: is a directory")));
                }
                if !meta.is_file() || meta.len() == 0 {
                    // A FIFO, a character device, or an empty file: stream it.
                    return Self::stream(label, Box::new(Fd::new(file)));
                }
                let map = map_file(&file).map_err(|e| OpenError::Io(format!("{label}: {}", io_text(&e))))?;
                let (framer, header_len) = detect(&map, true)
                    .map_err(|m| OpenError::Format(format!("{label}: {}", m.unwrap_or_default())))?;
                Ok(Source {
                    label,
                    framer,
                    kind: SourceKind::Mapped {
                        map: Arc::new(map),
                        header_len,
                    },
                })
            }
        }
    }

    /// A source over bytes already in memory (tests, benches, fuzzing).
    pub fn from_reader(label: &str, reader: Box<dyn Read + Send>) -> Result<Source, OpenError> {
        Self::stream(label.into(), Box::new(Plain(reader)))
    }

    /// A source over a read-only map (a file's, or an anonymous one holding
    /// bytes from memory): framed exactly as a mapped file is.
    pub fn from_map(label: &str, map: Mmap) -> Result<Source, OpenError> {
        let (framer, header_len) = detect(&map, true)
            .map_err(|m| OpenError::Format(format!("{label}: {}", m.unwrap_or_default())))?;
        Ok(Source {
            label: label.into(),
            framer,
            kind: SourceKind::Mapped {
                map: Arc::new(map),
                header_len,
            },
        })
    }

    fn stream(label: String, mut reader: Box<dyn Stream>) -> Result<Source, OpenError> {
        let mut head = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let at_eof = match reader.read(&mut chunk) {
                Ok(0) => true,
                Ok(n) => {
                    head.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(OpenError::Io(format!("{label}: {}", io_text(&e)))),
            };
            match detect(&head, at_eof) {
                Ok((framer, header_len)) => {
                    return Ok(Source {
                        label,
                        framer,
                        kind: SourceKind::Stream {
                            reader,
                            head,
                            header_len,
                        },
                    });
                }
                Err(None) => continue,
                Err(Some(m)) => return Err(OpenError::Format(format!("{label}: {m}"))),
            }
        }
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.kind, SourceKind::Mapped { .. })
    }

    /// Total length when known (a mapped file).
    pub fn len_hint(&self) -> Option<u64> {
        match &self.kind {
            SourceKind::Mapped { map, .. } => Some(map.len() as u64),
            SourceKind::Stream { .. } => None,
        }
    }

    /// Frames the whole input into `sink`, on the calling thread. Pipe
    /// buffers and record vectors come back from the workers through
    /// `spares`, so the steady state allocates nothing.
    pub fn read(self, sink: &Sender<Batch>, spares: &Spares, stop: &AtomicBool) -> Ending {
        let mut framer = self.framer;
        match self.kind {
            SourceKind::Mapped { map, header_len } => {
                read_mapped(map, header_len, &mut framer, spares, sink, stop)
            }
            SourceKind::Stream {
                reader,
                head,
                header_len,
            } => read_stream(reader, head, header_len, &mut framer, sink, spares, stop),
        }
    }
}

/// `Err(None)`: need more bytes; `Err(Some(msg))`: not a capture.
fn detect(head: &[u8], at_eof: bool) -> Result<(Framer, usize), Option<String>> {
    match Framer::detect(head) {
        Ok(f) => Ok(f),
        Err(DetectError::Unsupported(m)) => Err(Some(m)),
        Err(DetectError::NeedMore) if !at_eof => Err(None),
        Err(DetectError::NeedMore) if head.is_empty() => Err(Some("empty input: not a capture".into())),
        Err(DetectError::NeedMore) => Err(Some(format!(
            "not a capture: {} bytes, too short for a capture file header",
            head.len()
        ))),
    }
}

#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is only ever read through `&[u8]`. If another process
    // truncates the file while we read it, accesses past the new end fault
    // (SIGBUS); that is the same hazard every mmap reader (ripgrep, pcap
    // tools) accepts for regular files, and connbal never writes the map.
    let map = unsafe { Mmap::map(file)? };
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// How far behind the reader the mapped file's pages are given back, and
/// in what steps: far past the few batches in flight (each at most
/// [`BATCH_BYTES`]), whose parsers may still read them.
const RELEASE_LAG: usize = 32 << 20;
const RELEASE_STEP: usize = 16 << 20;

/// Gives the kernel back the page-table entries of the map's pages from
/// `released` up to [`RELEASE_LAG`] behind `pos`, a [`RELEASE_STEP`] at a
/// time; returns how far they are given back now. The resident set of
/// a replay then no longer grows with the capture (a 1.5 GB capture:
/// peak RSS 1.45-1.51 GB -> 97-103 MB), and the map's final `munmap`,
/// which a parser thread ran at the end of a run (60 ms under strace on
/// 1.5 GB), has little left to do. Whole runs take the same time: an
/// entry costs about 200 ns to drop wherever that is done.
fn release_behind(map: &Mmap, mut released: usize, pos: usize) -> usize {
    // Most batches move less than a step; a record of up to 16 MiB moves
    // the reader further, and the steps catch up with it at once.
    while pos >= released + RELEASE_LAG + RELEASE_STEP {
        drop_step(map, released);
        released += RELEASE_STEP;
    }
    released
}

/// Drops the page-table entries of the [`RELEASE_STEP`] of `map` from
/// `offset` (inside the map: the step lies behind the reader).
#[cfg(unix)]
#[allow(unsafe_code)]
fn drop_step(map: &Mmap, offset: usize) {
    // SAFETY: the step is whole pages of a read-only shared map of a
    // file, which connbal never writes. MADV_DONTNEED only drops their
    // page-table entries: the next access (a thread still reading a
    // neighbouring record, say) faults the same page-cache page back in,
    // holding the same bytes, so nothing any reference sees changes.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, RELEASE_STEP) };
}

#[cfg(not(unix))]
fn drop_step(_map: &Mmap, _offset: usize) {}

fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

enum RunEnd {
    Full,
    Incomplete(usize),
    Damaged(String),
    Unsupported(String),
}

/// Frames records from `bytes` until a limit, the end, or damage.
fn frame_run(
    framer: &mut Framer,
    bytes: &[u8],
    max_bytes: usize,
    records: &mut Vec<RecordMeta>,
    counters: &mut Counters,
) -> (usize, RunEnd) {
    let first = records.len();
    let (pos, end) = frame_records(framer, bytes, max_bytes, records);
    for meta in records.get(first..).unwrap_or(&[]) {
        counters.note_record(meta.ts, meta.caplen as usize);
    }
    if let Some(d) = framer.drops() {
        counters.drops = Some(u64::from(d));
    }
    (pos, end)
}

fn frame_records(
    framer: &mut Framer,
    bytes: &[u8],
    max_bytes: usize,
    records: &mut Vec<RecordMeta>,
) -> (usize, RunEnd) {
    let mut pos = 0usize;
    loop {
        let limits = RunLimits {
            max_bytes,
            max_records: BATCH_RECORDS,
        };
        pos = framer.run(bytes, pos, limits, records);
        if records.len() >= BATCH_RECORDS || pos >= max_bytes {
            return (pos, RunEnd::Full);
        }
        let rest = bytes.get(pos..).unwrap_or(&[]);
        match framer.next(rest) {
            Frame::Record(mut meta, len) => {
                meta.data_off = meta.data_off.saturating_add(pos as u32);
                records.push(meta);
                pos += len;
            }
            Frame::Skip(len) => pos += len.max(1),
            Frame::Incomplete(n) => return (pos, RunEnd::Incomplete(n)),
            Frame::Damaged(what) => return (pos, RunEnd::Damaged(what)),
            Frame::Unsupported(what) => return (pos, RunEnd::Unsupported(what)),
        }
    }
}

fn read_mapped(
    map: Arc<Mmap>,
    header_len: usize,
    framer: &mut Framer,
    spares: &Spares,
    sink: &Sender<Batch>,
    stop: &AtomicBool,
) -> Ending {
    let total = map.len();
    let mut pos = header_len.min(total);
    let mut seq = 0u64;
    let mut released = 0usize;
    loop {
        released = release_behind(&map, released, pos);
        if stop.load(Ordering::Relaxed) {
            return Ending::Stopped;
        }
        let mut records = spares.records();
        let mut counters = Counters::default();
        let rest = map.get(pos..).unwrap_or(&[]);
        let (consumed, end) = frame_run(framer, rest, BATCH_BYTES, &mut records, &mut counters);
        if consumed > 0 {
            let chunk = Chunk::Mapped {
                map: Arc::clone(&map),
                start: pos,
                end: pos + consumed,
            };
            let end_offset = (pos + consumed) as u64;
            if !spares.dispatch(
                sink,
                Batch {
                    seq,
                    end_offset,
                    chunk,
                    records,
                    counters,
                },
            ) {
                return Ending::Stopped;
            }
            seq += 1;
            pos += consumed;
        }
        match end {
            RunEnd::Full => {}
            RunEnd::Incomplete(_) if pos >= total => return Ending::Complete,
            RunEnd::Incomplete(_) => {
                return Ending::CutOff {
                    offset: pos as u64,
                    bytes: (total - pos) as u64,
                };
            }
            RunEnd::Damaged(what) => {
                return Ending::Damaged {
                    offset: pos as u64,
                    what,
                };
            }
            RunEnd::Unsupported(what) => {
                return Ending::Unsupported {
                    offset: pos as u64,
                    what,
                };
            }
        }
    }
}

fn read_stream(
    mut reader: Box<dyn Stream>,
    head: Vec<u8>,
    header_len: usize,
    framer: &mut Framer,
    sink: &Sender<Batch>,
    spares: &Spares,
    stop: &AtomicBool,
) -> Ending {
    let mut pool = BufferPool {
        spare: &spares.buffers,
        made: 0,
        size: spares.buffer_size,
        count: spares.buffer_count,
    };
    let after_header = head.get(header_len..).unwrap_or(&[]);
    let Some(mut buf) = pool.take(after_header.len()) else {
        return Ending::Stopped;
    };
    let mut filled = after_header.len();
    if let Some(dst) = buf.get_mut(..filled) {
        dst.copy_from_slice(after_header);
    }
    let mut base = header_len as u64;
    let mut seq = 0u64;
    // Bytes a second in the last coalescing window.
    let mut inflow = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ending::Stopped;
        }
        let mut records = spares.records();
        let mut counters = Counters::default();
        let (consumed, end) = frame_run(
            framer,
            buf.get(..filled).unwrap_or(&[]),
            usize::MAX,
            &mut records,
            &mut counters,
        );
        if consumed > 0 {
            let left = filled - consumed;
            let Some(mut next) = pool.take(left) else {
                return Ending::Stopped;
            };
            if let (Some(dst), Some(src)) = (next.get_mut(..left), buf.get(consumed..filled)) {
                dst.copy_from_slice(src);
            }
            let chunk = Chunk::Owned {
                buf: std::mem::replace(&mut buf, next),
                len: consumed,
            };
            let end_offset = base + consumed as u64;
            if !spares.dispatch(
                sink,
                Batch {
                    seq,
                    end_offset,
                    chunk,
                    records,
                    counters,
                },
            ) {
                return Ending::Stopped;
            }
            seq += 1;
            base += consumed as u64;
            filled = left;
        }
        match end {
            RunEnd::Full => continue,
            RunEnd::Damaged(what) => return Ending::Damaged { offset: base, what },
            RunEnd::Unsupported(what) => return Ending::Unsupported { offset: base, what },
            RunEnd::Incomplete(needed) => {
                if needed > buf.len() {
                    buf.resize(needed, 0);
                }
            }
        }
        let target = buf.get_mut(filled..).unwrap_or(&mut []);
        match reader.read(target) {
            Ok(0) if filled == 0 => return Ending::Complete,
            Ok(0) => {
                return Ending::CutOff {
                    offset: base,
                    bytes: filled as u64,
                };
            }
            Ok(n) => {
                filled += n;
                filled = fill_window(&mut *reader, &mut buf, filled, n, &mut inflow);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Ending::ReadError(io_text(&e)),
        }
    }
}

/// Fills `buf`, which holds `filled` bytes (`fresh` of them just read),
/// with what arrives within [`COALESCE`], and returns how much it holds:
/// few large batches, not many small ones. A live capture trickles in
/// (snoop writes what each tick caught, or each packet). Waiting on
/// readiness wakes the reader for every write; so when the last window's
/// inflow (`rate`, bytes a second) would take the pipe at least a
/// millisecond to fill a quarter, the reader sleeps in steps that leave
/// the pipe room, until the window ends or the pipe is half full, and then
/// drains it. A fast writer (a saved capture piped in) is read as it comes.
fn fill_window(
    reader: &mut dyn Stream,
    buf: &mut [u8],
    mut filled: usize,
    fresh: usize,
    rate: &mut Option<f64>,
) -> usize {
    let started = Instant::now();
    let left = || COALESCE.saturating_sub(started.elapsed());
    let mut backlog = reader.backlog();
    let step = match (backlog, *rate) {
        (Some(b), Some(r)) if !b.closed => (b.capacity as f64 / 4.0) / r.max(1.0),
        _ => 0.0,
    };
    let drain = step >= 1e-3;
    if drain {
        let step = Duration::from_secs_f64(step).min(COALESCE / 2);
        while let Some(b) = backlog
            && !b.closed
            && !left().is_zero()
            && b.waiting < b.capacity / 2
            && filled + b.waiting < buf.len()
        {
            std::thread::sleep(left().min(step));
            backlog = reader.backlog();
        }
    }
    let before = filled - fresh.min(filled);
    let timeout = || if drain { Duration::ZERO } else { left() };
    while filled < buf.len() && reader.wait_ready(timeout()) {
        match reader.read(buf.get_mut(filled..).unwrap_or(&mut [])) {
            Ok(0) | Err(_) => break,
            Ok(m) => filled += m,
        }
    }
    let elapsed = started.elapsed().max(Duration::from_micros(100));
    *rate = Some((filled - before) as f64 / elapsed.as_secs_f64());
    filled
}

/// Pipe buffers: at most `PIPE_BUFFERS` exist; the reader waits for a
/// worker to give one back before reading more (back-pressure, not growth).
struct BufferPool<'a> {
    spare: &'a Receiver<Vec<u8>>,
    made: usize,
    size: usize,
    count: usize,
}

impl BufferPool<'_> {
    fn take(&mut self, at_least: usize) -> Option<Vec<u8>> {
        let mut buf = match self.spare.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) if self.made < self.count => {
                self.made += 1;
                vec![0u8; self.size]
            }
            Err(_) => self.spare.recv().ok()?,
        };
        if buf.len() > 4 * self.size {
            // A giant record grew it once; do not keep the memory.
            buf.truncate(self.size);
            buf.shrink_to_fit();
        }
        let want = at_least.max(self.size);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        Some(buf)
    }
}

/// For `-f FILE` and positional `FILE`.
pub fn input_path(flag: Option<PathBuf>, positional: Option<PathBuf>) -> Result<Option<PathBuf>, String> {
    match (flag, positional) {
        (Some(_), Some(_)) => Err("give the capture either with -f or as an argument, not both".into()),
        (a, b) => Ok(a.or(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The reader gives back the pages of a mapped capture a step at a
    /// time, [`RELEASE_LAG`] behind itself, and a page given back still
    /// reads as the file's bytes.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_mapped_capture_is_given_back_behind_the_reader() {
        use crate::prefault::resident;
        const MIB: usize = 1 << 20;
        // A file in memory (nothing written to a disk), mapped as a
        // capture is.
        let bytes: Vec<u8> = (0..64 * MIB).map(|i| (i / 4096 % 251) as u8).collect();
        let fd =
            rustix::fs::memfd_create("connbal-release", rustix::fs::MemfdFlags::CLOEXEC).expect("a memfd");
        let mut file = File::from(fd);
        file.write_all(&bytes).expect("the bytes");
        let map = map_file(&file).expect("a map");
        let base = map.as_ptr() as usize;
        let touched: u64 = map.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        assert_eq!(resident(base, 64 * MIB), (64 * MIB / 4096, 64 * MIB / 4096));

        // Not yet a step past the lag: nothing given back.
        assert_eq!(release_behind(&map, 0, RELEASE_LAG + RELEASE_STEP - 1), 0);
        assert_eq!(resident(base, RELEASE_STEP).0, RELEASE_STEP / 4096);
        // A step past it: the first step, and nothing after it.
        assert_eq!(release_behind(&map, 0, 48 * MIB), RELEASE_STEP);
        assert_eq!(resident(base, RELEASE_STEP).0, 0);
        assert_eq!(
            resident(base + RELEASE_STEP, 48 * MIB),
            (48 * MIB / 4096, 48 * MIB / 4096)
        );
        assert_eq!(release_behind(&map, RELEASE_STEP, 63 * MIB), RELEASE_STEP);
        assert_eq!(release_behind(&map, RELEASE_STEP, 64 * MIB), 2 * RELEASE_STEP);
        assert_eq!(resident(base, 2 * RELEASE_STEP).0, 0);
        // A reader far ahead (a long record): every step it has passed.
        std::hint::black_box(map.iter().step_by(4096).map(|&b| u64::from(b)).sum::<u64>());
        assert_eq!(resident(base, 64 * MIB), (64 * MIB / 4096, 64 * MIB / 4096));
        assert_eq!(release_behind(&map, 0, 64 * MIB), 2 * RELEASE_STEP);
        assert_eq!(resident(base, 2 * RELEASE_STEP).0, 0);
        assert_eq!(
            resident(base + 2 * RELEASE_STEP, 32 * MIB),
            (32 * MIB / 4096, 32 * MIB / 4096)
        );

        // The bytes are the file's, as before.
        assert_eq!(
            map.iter().step_by(4096).map(|&b| u64::from(b)).sum::<u64>(),
            touched
        );
        assert!(map.iter().eq(bytes.iter()));
    }

    fn pipe() -> (Fd<File>, File) {
        let (r, w) = rustix::pipe::pipe().expect("a pipe");
        (Fd::new(File::from(r)), File::from(w))
    }

    /// `fill_window` after a first read of `first` bytes, with the last
    /// window's inflow `rate`: (bytes in the buffer, time taken, new rate).
    fn window(r: &mut Fd<File>, buf: &mut [u8], first: usize, rate: f64) -> (usize, Duration, f64) {
        let n = r.read(buf.get_mut(..first).expect("room")).expect("a read");
        let mut rate = Some(rate);
        let started = Instant::now();
        let filled = fill_window(r, buf, n, n, &mut rate);
        (filled, started.elapsed(), rate.expect("a rate"))
    }

    #[test]
    fn a_trickle_is_slept_through_to_the_end_of_the_window_then_drained() {
        let (mut r, mut w) = pipe();
        w.write_all(&[7; 300]).expect("write");
        let mut buf = vec![0; 4096];
        let (filled, took, rate) = window(&mut r, &mut buf, 100, 2_000.0);
        assert_eq!(filled, 300);
        assert!(took >= COALESCE, "{took:?}");
        assert!(rate < 10_000.0, "{rate}");
        drop(w);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_closed_writer_or_a_half_full_pipe_is_not_waited_on() {
        // The writer has gone: what waits is read at once.
        let (mut r, mut w) = pipe();
        w.write_all(&[7; 300]).expect("write");
        drop(w);
        let mut buf = vec![0; 4096];
        let (filled, took, _) = window(&mut r, &mut buf, 100, 2_000.0);
        assert_eq!(filled, 300);
        assert!(took < COALESCE, "{took:?}");
        // Half the pipe waiting: drained at once, even at a trickle's rate.
        let (mut r, mut w) = pipe();
        let capacity = r.backlog().expect("a pipe tells its backlog").capacity;
        let bytes = vec![7; capacity / 2 + 100];
        w.write_all(&bytes).expect("write");
        let mut buf = vec![0; capacity * 2];
        let (filled, took, _) = window(&mut r, &mut buf, 100, 2_000.0);
        assert_eq!(filled, bytes.len());
        assert!(took < COALESCE, "{took:?}");
        drop(w);
    }
}
