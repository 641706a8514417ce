//! Memory the aggregator is about to write, made ready beside it.
//!
//! The kernel zeroes an anonymous page when it is first touched. The
//! aggregator's tables grow into fresh memory as a capture brings new
//! services and backends, and on the wide workload (100 k services,
//! 266 k backends, 0.8 M records) the zeroing of those pages, in the
//! aggregator's own page faults, took a fifth of all the CPU time the run
//! spent (perf: `clear_page_erms`). A machine replaying a mapped capture
//! often has a core the aggregator leaves idle: as a table's writes cross
//! into a new 2 MiB stretch of its room, the next stretch is handed to a
//! helper thread, which has the kernel populate it
//! (`MADV_POPULATE_WRITE`: the pages are faulted in writable and zeroed,
//! as a write would, and nothing is written to them); at a vector's
//! first push, the rest of the stretch it starts in and the next. A hash
//! table with room to grow in place has that room populated when it is
//! three quarters of the way to growing ([`crate::table::FpTable`]).
//! When the aggregator gets there, the pages are already its own: on
//! wide, its page faults went from 14.1 k to 4.1 k, and to 2.2-2.4 k
//! with the first stretches.
//!
//! Only the thread that called [`start`] asks, and only while its
//! [`Prefaulting`] lives: the pipeline starts it when it reads a mapped
//! file, whose tables have their room reserved
//! ([`crate::aggregate::Aggregator::expect_capture`]). Through a pipe,
//! where memory is the budget, nothing is populated ahead of use. A
//! request costs one channel send (a wake-up of the helper) per 2 MiB a
//! table grows; every other push pays one comparison.
//!
//! Populating never changes what memory holds, so a request is harmless
//! whatever has become of its memory by the time the helper gets to it (a
//! table moved elsewhere, its old memory freed or reused): at worst pages
//! nobody will use become resident.

use std::cell::RefCell;

use crossbeam_channel::Sender;

/// The unit of a request: a transparent huge page, so that a populated
/// stretch of memory advised for huge pages becomes one.
pub const STRETCH: usize = 2 << 20;
/// Stretches of a table's room kept populated: the one being written and
/// the `AHEAD - 1` after it. A stretch holds 32 k backends, each made by
/// an event of its own: the helper, which populates one in about a
/// millisecond, keeps well ahead.
pub const AHEAD: usize = 2;
const PAGE: usize = 4096;

enum Job {
    /// Populate `len` bytes from address `start` (page-aligned).
    Populate { start: usize, len: usize },
    /// Tells the sender that every job before it is done.
    #[cfg(test)]
    Flush(Sender<()>),
}

thread_local! {
    static HELPER: RefCell<Option<Sender<Job>>> = const { RefCell::new(None) };
}

/// The helper of the thread that started it: requests stop when it is
/// dropped, and the helper thread ends once it has done the last one.
pub struct Prefaulting {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Prefaulting {
    fn drop(&mut self) {
        HELPER.with(|h| h.borrow_mut().take());
    }
}

impl Prefaulting {
    /// Waits until every request made so far has been done (for tests).
    #[cfg(test)]
    pub(crate) fn flush(&self) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if send(Job::Flush(tx)) {
            let _ = rx.recv();
        }
    }
}

/// Starts a helper for this thread's requests; `None` where the kernel
/// cannot populate memory on request (not Linux) or no thread could be
/// started, and requests then do nothing.
pub fn start() -> Option<Prefaulting> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    std::thread::Builder::new()
        .name("connbal-prefault".into())
        .spawn(move || {
            for job in rx {
                match job {
                    Job::Populate { start, len } => populate(start, len),
                    #[cfg(test)]
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })
        .ok()?;
    HELPER.with(|h| *h.borrow_mut() = Some(tx));
    Some(Prefaulting {
        _not_send: std::marker::PhantomData,
    })
}

/// Hands `job` to this thread's helper; false if it has none.
fn send(job: Job) -> bool {
    HELPER.with(|h| h.borrow().as_ref().is_some_and(|tx| tx.send(job).is_ok()))
}

/// Asks for the whole pages of `memory` to be populated.
pub fn request<T>(memory: &[T]) {
    let start = (memory.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (memory.as_ptr() as usize + size_of_val(memory)) / PAGE * PAGE;
    if end > start {
        send(Job::Populate {
            start,
            len: end - start,
        });
    }
}

/// Asks for `v`'s room (its spare capacity) to be populated from its
/// start to the end of the `AHEAD - 1` stretches after the one it starts
/// in (the rest of that one in 4 KiB pages, up to its boundary, where
/// the room seldom starts): called when a full vector has moved to
/// memory twice its size, which it will fill, and at a vector's first
/// push (room reserved on a guess, as for a mapped file's tables, is
/// asked for only once it is used: a small table would never use those
/// stretches). On wide the four reserved vectors' first stretches were
/// some 500 page faults each, half the aggregator's, before they were
/// asked for.
#[cold]
#[inline(never)]
pub fn room<T>(v: &mut Vec<T>) {
    let spare = v.spare_capacity_mut();
    let base = spare.as_ptr() as usize;
    let end = (base / STRETCH + AHEAD) * STRETCH;
    let len = spare.len().min((end - base) / size_of::<T>().max(1));
    if let Some(part) = spare.get(..len) {
        request(part);
    }
}

/// Called after each push to `v`: when that push reached a new stretch,
/// asks for the one `AHEAD - 1` past it (the next) to be populated, as
/// far as `v`'s room goes; after its first push, for its [`room`].
#[inline(always)]
pub fn after_push<T>(v: &mut Vec<T>) {
    let end = v.as_ptr() as usize + size_of_val(v.as_slice());
    if size_of::<T>() == 0 {
        return;
    }
    if v.len() == 1 {
        room(v);
    } else if end % STRETCH < size_of::<T>() {
        reached(v, end - end % STRETCH);
    }
}

#[cold]
#[inline(never)]
fn reached<T>(v: &mut Vec<T>, boundary: usize) {
    let spare = v.spare_capacity_mut();
    let base = spare.as_ptr() as usize;
    let from = (boundary + (AHEAD - 1) * STRETCH).saturating_sub(base) / size_of::<T>();
    let to = (boundary + AHEAD * STRETCH).saturating_sub(base) / size_of::<T>();
    if let Some(part) = spare.get(from.min(spare.len())..to.min(spare.len())) {
        request(part);
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn populate(start: usize, len: usize) {
    // SAFETY: MADV_POPULATE_WRITE faults pages in (zeroed if new, copied
    // if shared copy-on-write) without reading or changing what they
    // hold, as a write of each page's own contents would; it cannot break
    // any memory another thread uses, whatever the range now belongs to.
    // A range no longer mapped fails with ENOMEM, which changes nothing.
    let _ = unsafe {
        rustix::mm::madvise(
            start as *mut std::ffi::c_void,
            len,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn populate(_start: usize, _len: usize) {}

/// How many of the `len` bytes' pages from address `start` are resident
/// (bit 63 of each page's entry in /proc/self/pagemap), and how many pages
/// there are (for tests).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn resident(start: usize, len: usize) -> (usize, usize) {
    use std::io::{Read, Seek, SeekFrom};
    let pages = len / PAGE;
    let mut map = std::fs::File::open("/proc/self/pagemap").expect("pagemap");
    map.seek(SeekFrom::Start((start / PAGE) as u64 * 8))
        .expect("seek");
    let mut entries = vec![0u8; pages * 8];
    map.read_exact(&mut entries).expect("read pagemap");
    let present = entries
        .chunks_exact(8)
        .filter(|e| e.last().is_some_and(|b| b & 0x80 != 0))
        .count();
    (present, pages)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A vector's room becomes resident ahead of its pushes: its first
    /// [`AHEAD`] stretches when the room is made, and the one after each
    /// stretch the pushes reach; none of it without a
    /// helper, and what was written stays as written.
    #[test]
    fn room_is_populated_ahead_of_the_pushes() {
        // Above glibc's largest mmap threshold (32 MiB): fresh pages that
        // nothing has touched.
        let mut v: Vec<u8> = Vec::with_capacity(24 * STRETCH);
        let base = v.as_ptr() as usize;
        // Stretch k: the k-th whole 2 MiB of the room, from its first
        // boundary.
        let first = base.next_multiple_of(STRETCH);
        let stretch = |k: usize| resident(first + k * STRETCH, STRETCH);

        room(&mut v);
        let helper = start().expect("a helper");
        helper.flush();
        assert_eq!(stretch(1).0, 0, "populated with no helper to ask");

        room(&mut v);
        helper.flush();
        // The room from its start to the end of the stretch after the
        // one it starts in: all of stretch 0.
        let (populated, pages) = stretch(0);
        assert_eq!(populated, pages, "the first stretch");
        assert_eq!(stretch(2).0, 0, "stretch 2 is not asked for yet");

        // Reaching stretch 1 asks for stretch 2 (and reaching stretch 0,
        // for stretch 1).
        while v.len() < first - base + STRETCH + 1 {
            v.push(7);
            after_push(&mut v);
        }
        helper.flush();
        let (populated, pages) = stretch(2);
        assert_eq!(populated, pages, "the stretch after the one reached");
        assert_eq!(stretch(3).0, 0, "and no further");
        assert!(v.iter().all(|&b| b == 7), "what was written stays");

        drop(helper);
        while v.len() < first - base + 2 * STRETCH + 1 {
            v.push(1);
            after_push(&mut v);
        }
        // Stretch 2 was reached: stretch 3 would have been asked for.
        assert_eq!(stretch(3).0, 0, "a dropped helper takes no request");
    }

    /// Room reserved on a guess, not starting on a boundary: its first
    /// push asks for the rest of the stretch it starts in (4 KiB pages up
    /// to the first boundary) and the one after; the pushes that follow,
    /// until the boundary, ask for nothing.
    #[test]
    fn a_first_push_populates_the_stretch_it_starts_in() {
        // A vector that starts at least 64 pages before a boundary (the
        // kernel places mappings top-down, often just under a boundary:
        // one that misses is kept, and the next lands elsewhere).
        let far_enough = |v: &Vec<u8>| {
            let base = v.as_ptr() as usize;
            (base / STRETCH + 1) * STRETCH - base >= 64 * PAGE
        };
        let mut missed = Vec::new();
        let mut v: Vec<u8> = Vec::with_capacity(23 * STRETCH + STRETCH / 2);
        while !far_enough(&v) && missed.len() < 8 {
            missed.push(std::mem::replace(
                &mut v,
                Vec::with_capacity(23 * STRETCH + STRETCH / 2),
            ));
        }
        assert!(far_enough(&v), "no vector started far enough from a boundary");
        let base = v.as_ptr() as usize;
        let first = (base / STRETCH + 1) * STRETCH;
        let helper = start().expect("a helper");
        let head = (base + 1).next_multiple_of(PAGE);
        assert_eq!(resident(head, first - head).0, 0, "populated before the push");

        v.push(1);
        after_push(&mut v);
        helper.flush();
        let (populated, pages) = resident(head, first - head);
        assert_eq!(populated, pages, "the rest of the stretch it starts in");
        let (populated, pages) = resident(first, STRETCH);
        assert_eq!(populated, pages, "the stretch after it");
        assert_eq!(resident(first + STRETCH, STRETCH).0, 0, "and no further");

        // The push that fills the stretch up to its end reaches the
        // boundary (and asks for the stretch after the next).
        while v.len() < first - base - 1 {
            v.push(2);
            after_push(&mut v);
        }
        helper.flush();
        assert_eq!(
            resident(first + STRETCH, STRETCH).0,
            0,
            "nothing until the boundary"
        );
        v.push(2);
        after_push(&mut v);
        helper.flush();
        let (populated, pages) = resident(first + STRETCH, STRETCH);
        assert_eq!(populated, pages, "the stretch after the next, at the boundary");
        assert!(
            v.iter().skip(1).all(|&b| b == 2) && v.first() == Some(&1),
            "what was written stays"
        );
    }
}
