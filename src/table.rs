//! The aggregator's hash tables, and the hashes that key them.
//!
//! Every key is hashed by the parser workers, not by the aggregator: a DNS
//! event carries the fingerprint of its pending-query key and the hash of
//! its (client, name) service; a TCP event the hash of its (source,
//! destination) pair and the fingerprint of its 4-tuple. The one thread
//! that applies events in capture order only probes tables, and can start
//! the memory loads of the events ahead of the one it is applying
//! ([`FpTable::prefetch`]).
//!
//! Hashes come from a hasher keyed at random once per run, so an attacker
//! cannot aim collisions. An [`FpTable`] tells its entries apart by 63 bits
//! of the 64-bit hash (the top bit marks a slot as used): pending queries,
//! `-a` connections and bindings by those bits alone (two keys share them
//! with probability 2^-63 per pair); services also by their name's own
//! 64-bit hash, and backends by their service. Recent SYNs keep fewer
//! bits ([`SynCache`]).

use std::hash::Hash;
use std::sync::OnceLock;

use crate::addr::Addr;
use crate::prefault;

/// The per-run keyed hasher shared by every thread.
pub fn keyed() -> &'static ahash::RandomState {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new)
}

/// A 64-bit fingerprint of any hashable value.
pub fn fingerprint<T: Hash>(value: &T) -> u64 {
    keyed().hash_one(value)
}

/// The fingerprint of a name in folded wire form: its length, then its
/// bytes sixteen at a time (the last ones padded with zeros), each pair of
/// words folded with keys into the running hash (as wyhash does).
pub fn name_hash(name: &[u8]) -> u64 {
    hash_name_words(name, name.len(), |w| w)
}

/// A keyed fingerprint of every byte of `bytes` (the memo's, of a whole
/// message): [`name_hash`]'s chunks, but the last sixteen bytes read
/// whole, overlapping the chunk before them where the length is not a
/// multiple of 16 (the length, hashed first, tells such inputs apart), so
/// that no partial chunk is assembled: through [`tail_at`] that cost 42
/// instructions a response. Inputs of 16 bytes or fewer are hashed as
/// [`name_hash`] hashes them.
///
/// Past the first 32 bytes the chunks go to two running hashes in turn,
/// each with its own key, joined before the last chunk (as wyhash runs
/// three over long inputs): each fold waits on the multiply before it,
/// so one chain over a 128-byte response was eight multiplies end to
/// end, and with two the chains are half as long.
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    if len <= 16 {
        return name_hash(bytes);
    }
    let last = len - 16;
    let mut h = NameHash::new(len);
    let s = h.s;
    let mut other = s[3] ^ len as u64;
    let mut at = 0;
    while at + 16 < last {
        let (a, b) = chunk_at(bytes, at);
        h.chunk(a, b);
        let (c, d) = chunk_at(bytes, at + 16);
        other = fold(c ^ s[1], d ^ other);
        at += 32;
    }
    if at < last {
        let (a, b) = chunk_at(bytes, at);
        h.chunk(a, b);
    }
    h.h = fold(h.h ^ s[5], other ^ s[9]);
    let (a, b) = chunk_at(bytes, last);
    h.chunk(a, b);
    h.finish()
}

/// [`name_hash`] of the folded form of `raw[start..end]`: a name in wire
/// form with no compression pointer, lower-cased word by word as it is
/// hashed, never copied.
#[inline]
pub fn name_hash_raw(raw: &[u8], start: usize, end: usize) -> u64 {
    hash_name_words(raw.get(start..).unwrap_or(&[]), end.saturating_sub(start), lower8)
}

/// The name hash of the first `len` bytes of `bytes`, each word passed
/// through `fold_case` first.
#[inline(always)]
fn hash_name_words(bytes: &[u8], len: usize, fold_case: impl Fn(u64) -> u64) -> u64 {
    let mut h = NameHash::new(len);
    let mut at = 0;
    while at + 16 <= len {
        let (a, b) = chunk_at(bytes, at);
        h.chunk(fold_case(a), fold_case(b));
        at += 16;
    }
    if at < len {
        let (a, b) = chunk_at(bytes, at);
        h.last_chunk(fold_case(a), fold_case(b), len - at);
    }
    h.finish()
}

/// The two little-endian words of `bytes[at..at + 16]`, zeros past the
/// end of `bytes`.
#[inline(always)]
pub fn chunk_at(bytes: &[u8], at: usize) -> (u64, u64) {
    let word = |b: &[u8]| b.try_into().map_or(0, u64::from_le_bytes);
    match bytes.get(at..at + 16) {
        Some(chunk) => {
            let (a, b) = chunk.split_at(8);
            (word(a), word(b))
        }
        None => tail_at(bytes, at),
    }
}

/// [`chunk_at`] past the last whole 16 bytes: the 16 bytes that end
/// `bytes` are read whole and shifted down, so that no scratch buffer is
/// zeroed and no byte is copied one at a time (the last chunk of a folded
/// name, and of a question name at the end of a short query, is read this
/// way). Only a slice shorter than 16 bytes is read byte by byte. Kept
/// out of line and off the hot path's layout: inlined, it made a plain
/// query's hash 33 instructions dearer (callgrind, stages bench).
#[cold]
#[inline(never)]
fn tail_at(bytes: &[u8], at: usize) -> (u64, u64) {
    let left = bytes.len().saturating_sub(at).min(16);
    if left == 0 {
        return (0, 0);
    }
    let end = bytes.len();
    let w = match end.checked_sub(16).and_then(|s| bytes.get(s..end)) {
        Some(last) => last.try_into().map_or(0, u128::from_le_bytes) >> (8 * (16 - left)),
        None => bytes
            .get(at..)
            .unwrap_or(&[])
            .iter()
            .rev()
            .fold(0, |w, &x| (w << 8) | u128::from(x)),
    };
    (w as u64, (w >> 64) as u64)
}

/// [`name_hash`] a chunk at a time: the length first, then each 16 bytes
/// of the name as two little-endian words, the bytes past the name masked
/// off, each pair folded with keys into the running hash (as wyhash does).
pub struct NameHash {
    h: u64,
    /// The keys, fetched once rather than at every chunk.
    s: &'static [u64; 16],
}

impl NameHash {
    #[inline(always)]
    pub fn new(len: usize) -> Self {
        let s = seeds();
        NameHash {
            h: s[6] ^ len as u64,
            s,
        }
    }

    /// The next 16 bytes of the name.
    #[inline(always)]
    pub fn chunk(&mut self, a: u64, b: u64) {
        self.h = fold(a ^ self.s[7], b ^ self.h);
    }

    /// The last bytes of the name: `left` (1 to 16) of these 16.
    #[inline(always)]
    pub fn last_chunk(&mut self, a: u64, b: u64, left: usize) {
        let mask = |valid: usize| match valid {
            0 => 0,
            8.. => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        self.chunk(a & mask(left), b & mask(left.saturating_sub(8)));
    }

    #[inline(always)]
    pub fn finish(self) -> u64 {
        finish(self.h, self.s)
    }
}

/// Folds the ASCII capitals of eight bytes to lower case at once (bytes
/// 0x80 and up are left alone, as `u8::to_ascii_lowercase` does).
#[inline(always)]
pub fn lower8(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let heptets = w & (0x7F * ONES);
    // Bit 7 of each byte: the byte's low seven bits are >= 'A', > 'Z'.
    let at_least_a = heptets + (0x80 - u64::from(b'A')) * ONES;
    let above_z = heptets + (0x7F - u64::from(b'Z')) * ONES;
    let upper = at_least_a & !above_z & !w & (0x80 * ONES);
    w | (upper >> 2)
}

/// Secret keys for the fixed-size hashes below, random once per run.
fn seeds() -> &'static [u64; 16] {
    static SEEDS: OnceLock<[u64; 16]> = OnceLock::new();
    SEEDS.get_or_init(|| std::array::from_fn(|i| keyed().hash_one(i) | 1))
}

/// The 128-bit product of `a` and `b`, its halves folded together: the
/// mixing step of wyhash and foldhash. With secret keys xored into its
/// inputs, nobody who does not know the keys can aim a collision.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Mixes an address into `h`, with keys `k`. The two families use
/// different keys, so an IPv6 address can never be made to hash like an
/// IPv4 one.
#[inline(always)]
fn mix_addr(h: u64, a: &Addr, k: [u64; 4]) -> u64 {
    match a {
        Addr::V4(o) => fold(h ^ u64::from(u32::from_ne_bytes(*o)) ^ k[0], k[1]),
        Addr::V6(o) => {
            let (hi, lo) = split_words(o);
            fold(h ^ hi ^ k[2], lo ^ k[3])
        }
    }
}

#[inline(always)]
fn split_words(o: &[u8; 16]) -> (u64, u64) {
    let (hi, lo) = o.split_at(8);
    let word = |b: &[u8]| b.try_into().map_or(0, u64::from_ne_bytes);
    (word(hi), word(lo))
}

/// The keys of the first and the second address of a key.
#[inline(always)]
fn first(s: &[u64; 16]) -> [u64; 4] {
    [s[0], s[1], s[2], s[3]]
}

#[inline(always)]
fn second(s: &[u64; 16]) -> [u64; 4] {
    [s[4], s[5], s[6], s[7]]
}

/// The last step: spreads the bits once more.
#[inline(always)]
fn finish(h: u64, s: &[u64; 16]) -> u64 {
    fold(h ^ s[14], s[15])
}

/// The per-run keys of the hashes below, fetched once: a worker holds
/// one, so that each hash of a packet does not ask the [`OnceLock`]
/// again (five times a `-a` segment: those checks were 5 % of the
/// dissection's instructions on `-a` streams, callgrind). The free
/// functions below fetch the keys at each call, for callers off the
/// hot paths.
#[derive(Clone, Copy)]
pub struct Keys {
    s: &'static [u64; 16],
}

/// The keys are secret: a debug print names them, it does not show them.
impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// The keys of this run.
#[inline]
pub fn keys() -> Keys {
    Keys { s: seeds() }
}

impl Keys {
    /// The hash of a (client, address) pair: the key of the client's
    /// binding to that address.
    #[inline(always)]
    pub fn pair_hash(self, client: &Addr, addr: &Addr) -> u64 {
        self.pair_hash_of(self.pair_start(client), addr)
    }

    /// What [`Keys::pair_hash`] makes of the client alone: computed once
    /// for all the addresses of a response.
    #[inline(always)]
    pub fn pair_start(self, client: &Addr) -> u64 {
        let s = self.s;
        mix_addr(s[8], client, first(s))
    }

    /// [`Keys::pair_hash`] from the client's [`Keys::pair_start`].
    #[inline(always)]
    pub fn pair_hash_of(self, start: u64, addr: &Addr) -> u64 {
        let s = self.s;
        finish(mix_addr(start, addr, second(s)), s)
    }

    /// The hash of a (client, name) service, from the name's
    /// [`name_hash`].
    #[inline(always)]
    pub fn service_hash(self, client: &Addr, name_hash: u64) -> u64 {
        let s = self.s;
        finish(
            fold(mix_addr(s[9], client, first(s)) ^ name_hash ^ s[12], s[13]),
            s,
        )
    }

    /// The hash of a (client, name, address) backend, from its service's
    /// [`Keys::service_hash`] (client and name) and its binding's
    /// [`Keys::pair_hash`] (client and address): one keyed fold of two
    /// keyed hashes.
    #[inline(always)]
    pub fn backend_hash(self, service_hash: u64, pair_hash: u64) -> u64 {
        let s = self.s;
        fold(service_hash ^ s[10], pair_hash ^ s[2])
    }

    /// The fingerprint of a pending query's key.
    #[inline(always)]
    pub fn query_key(self, client: &Addr, server: &Addr, client_port: u16, id: u16) -> u64 {
        let s = self.s;
        let h = mix_addr(mix_addr(s[11], client, first(s)), server, second(s));
        let rest = (u64::from(client_port) << 16) | u64::from(id);
        finish(fold(h ^ rest ^ s[12], s[13]), s)
    }

    /// The fingerprint of a directed 4-tuple, from its addresses'
    /// [`Keys::pair_hash`].
    #[inline(always)]
    pub fn tuple_hash(self, pair: u64, src_port: u16, dst_port: u16) -> u64 {
        let s = self.s;
        let ports = (u64::from(src_port) << 16) | u64::from(dst_port);
        fold(pair ^ ports ^ s[0], s[5])
    }

    /// The fingerprint of a directed 4-tuple's [`Keys::tuple_hash`] and an
    /// initial sequence number: a SYN.
    #[inline(always)]
    pub fn syn_key(self, tuple: u64, isn: u32) -> u64 {
        let s = self.s;
        fold(tuple ^ u64::from(isn) ^ s[1], s[6])
    }
}

/// [`Keys::service_hash`] with this run's keys.
#[inline]
pub fn service_hash(client: &Addr, name_hash: u64) -> u64 {
    keys().service_hash(client, name_hash)
}

/// [`Keys::backend_hash`] with this run's keys.
#[inline]
pub fn backend_hash(service_hash: u64, pair_hash: u64) -> u64 {
    keys().backend_hash(service_hash, pair_hash)
}

/// [`Keys::query_key`] with this run's keys.
#[inline]
pub fn query_key(client: &Addr, server: &Addr, client_port: u16, id: u16) -> u64 {
    keys().query_key(client, server, client_port, id)
}

/// The fingerprint of a 4-tuple in either direction (`-a` connections),
/// from the [`Keys::tuple_hash`] of each direction.
#[inline]
pub fn connection_key(forward: u64, reverse: u64) -> u64 {
    forward.min(reverse)
}

/// The hashes an `-a` segment carries, of its directed 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TupleHashes {
    /// [`Keys::pair_hash`] of (source, destination), and of (destination,
    /// source).
    pub forward: u64,
    pub reverse: u64,
    /// [`Keys::tuple_hash`] of each direction: `there` from the source's
    /// side, `back` from the destination's.
    pub there: u64,
    pub back: u64,
}

impl TupleHashes {
    /// The hashes of the same 4-tuple seen the other way.
    #[inline(always)]
    fn reversed(self) -> Self {
        TupleHashes {
            forward: self.reverse,
            reverse: self.forward,
            there: self.back,
            back: self.there,
        }
    }

    /// [`connection_key`] of the 4-tuple.
    #[inline(always)]
    pub fn connection(&self) -> u64 {
        connection_key(self.there, self.back)
    }
}

/// The last 4-tuple a worker hashed, and its hashes. A connection's
/// segments mostly come one after another, in either direction (on `-a`
/// streams four in five are the last one's connection): for those, two
/// comparisons of addresses and ports stand in for four hashes. A pure
/// cache: what [`TupleMemo::hashes`] returns is what hashing gives.
#[derive(Clone, Copy, Debug, Default)]
pub struct TupleMemo {
    last: Option<(Addr, Addr, u16, u16, TupleHashes)>,
}

impl TupleMemo {
    /// The hashes of the 4-tuple from `src`:`src_port` to
    /// `dst`:`dst_port`.
    #[inline(always)]
    pub fn hashes(&mut self, k: Keys, src: &Addr, dst: &Addr, src_port: u16, dst_port: u16) -> TupleHashes {
        if let Some((a, b, a_port, b_port, h)) = &self.last {
            if (*a_port, *b_port) == (src_port, dst_port) && a == src && b == dst {
                return *h;
            }
            if (*a_port, *b_port) == (dst_port, src_port) && a == dst && b == src {
                return h.reversed();
            }
        }
        let forward = k.pair_hash(src, dst);
        let reverse = k.pair_hash(dst, src);
        let h = TupleHashes {
            forward,
            reverse,
            there: k.tuple_hash(forward, src_port, dst_port),
            back: k.tuple_hash(reverse, dst_port, src_port),
        };
        self.last = Some((*src, *dst, src_port, dst_port, h));
        h
    }

    /// Forgets the last 4-tuple.
    pub fn clear(&mut self) {
        self.last = None;
    }
}

/// Starts loading the cache lines of `value` (up to three: enough for the
/// structs the aggregator keeps).
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    let p: *const u8 = (value as *const T).cast();
    prefetch_line(p);
    if size_of::<T>() > 64 {
        prefetch_line(p.wrapping_add(64));
    }
    if size_of::<T>() > 1 {
        prefetch_line(p.wrapping_add(size_of::<T>() - 1));
    }
}

/// Starts loading `LINES` cache lines' worth of bytes from the start of
/// `items`. A count known when compiling unrolls into that many prefetches
/// (with the count clamped to the slice, a loop: 3 instructions a line).
/// Lines past the slice's end may be asked for: a hint, harmless anywhere.
#[inline(always)]
pub fn prefetch_lines<const LINES: usize, T>(items: &[T]) {
    let p: *const u8 = items.as_ptr().cast();
    for line in 0..LINES {
        prefetch_line(p.wrapping_add(line * 64));
    }
}

/// Starts loading the cache line at `p`. A hint: it never faults and has
/// no effect on what the program computes.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch_line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in
    // the baseline target). A prefetch never dereferences its pointer in
    // the program's semantics: it cannot fault, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The size of a transparent huge page on x86-64 and most arm64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// A vector of `len` copies of `value`, in transparent huge pages where
/// the kernel gives them (see [`advise_huge`]).
pub fn huge_vec<T: Clone>(len: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    advise_huge(v.spare_capacity_mut());
    v.resize(len, value);
    v
}

/// Advises the first `len` items of `v`'s spare capacity as
/// [`huge_vec`]'s memory is, and no more: huge pages past what a table
/// uses would be taken whole at its first touch of them.
fn advise_huge_first<T>(v: &mut Vec<T>, len: usize) {
    if let Some(part) = v.spare_capacity_mut().get_mut(..len) {
        advise_huge(part);
    }
}

/// Makes room in the empty `v` for `len` items where that costs only
/// address space (see [`reserving_is_free`]) and the allocator grants
/// it; whether it did. Otherwise `v` grows as it goes.
pub fn reserve_room<T>(v: &mut Vec<T>, len: usize) -> bool {
    v.is_empty() && reserving_is_free() && v.try_reserve_exact(len).is_ok()
}

/// [`reserve_room`], the room advised as [`huge_vec`]'s memory is.
pub fn reserve_huge<T>(v: &mut Vec<T>, len: usize) {
    if reserve_room(v, len) {
        advise_huge(v.spare_capacity_mut());
    }
}

/// Whether memory allocated and not yet written costs only address space:
/// on Linux unless overcommit is off (`vm.overcommit_memory` = 2), where
/// every allocation is charged in full against a limit and a generous
/// reservation could starve the allocations that follow.
#[cfg(target_os = "linux")]
pub fn reserving_is_free() -> bool {
    static FREE: OnceLock<bool> = OnceLock::new();
    *FREE.get_or_init(|| {
        std::fs::read("/proc/sys/vm/overcommit_memory")
            .is_ok_and(|mode| matches!(mode.first(), Some(b'0' | b'1')))
    })
}

/// Elsewhere (illumos and the BSDs charge anonymous memory as it is
/// allocated) it is not assumed to be.
#[cfg(not(target_os = "linux"))]
pub fn reserving_is_free() -> bool {
    false
}

/// Pushes `item`, growing `v` (by doubling) into memory advised as
/// [`huge_vec`]'s is; its room is populated ahead of the pushes where
/// this thread asks for that ([`prefault`]).
#[inline]
pub fn push_huge<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        let mut bigger = Vec::with_capacity((v.capacity() * 2).max(64));
        advise_huge(bigger.spare_capacity_mut());
        bigger.append(v);
        *v = bigger;
        prefault::room(v);
    }
    v.push(item);
    prefault::after_push(v);
}

/// Asks the kernel to back the whole 2 MiB stretches of `memory` with
/// transparent huge pages when they are first touched (`MADV_HUGEPAGE`;
/// a hint, ignored where THP is off). The aggregator's big tables are
/// probed at random: with 4 KiB pages nearly every probe also misses the
/// TLB, and a page walk holds up the prefetches that hide the misses.
/// Nothing smaller than 2 MiB is affected, so a pipe's small working set
/// keeps its 4 KiB pages.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge<T>(memory: &mut [std::mem::MaybeUninit<T>]) {
    let start = memory.as_mut_ptr() as usize;
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = (start + size_of_val(memory)) / HUGE_PAGE * HUGE_PAGE;
    if last <= first {
        return;
    }
    let from = memory.as_mut_ptr().cast::<u8>().wrapping_add(first - start);
    // SAFETY: [from, from + (last - first)) lies inside `memory`, which we
    // borrow mutably. MADV_HUGEPAGE only marks the range as eligible for
    // huge pages: it neither reads nor changes its contents, and the
    // kernel keeps them when it later collapses or splits the pages.
    // Failure (EINVAL without THP) leaves everything as it was.
    let _ = unsafe { rustix::mm::madvise(from.cast(), last - first, rustix::mm::Advice::LinuxHugepage) };
}

/// Elsewhere there is no such hint to give.
#[cfg(not(target_os = "linux"))]
fn advise_huge<T>(_memory: &mut [std::mem::MaybeUninit<T>]) {}

/// How an [`FpTable`] keeps a key's hash in the key's slot: 0 marks an
/// empty slot, so a stored hash has its top bit set, and the home slot
/// comes from the stored bits, so that a growth or a removal finds every
/// entry's home without its owner.
pub trait Tag: Copy + Default + Eq {
    /// The stored form of `hash`.
    fn of(hash: u64) -> Self;
    /// The bits an entry's home slot is masked from.
    fn home(self) -> usize;
}

/// The whole hash: the home slot from the low bits, entries told apart by
/// the other 63 (a caller whose `eq` answers yes to any entry trusts
/// them, as a fingerprint). Setting
/// the top bit is one instruction on every probe, where mapping 0 to 1
/// took three (5 % of the aggregator's instructions).
impl Tag for u64 {
    #[inline(always)]
    fn of(hash: u64) -> u64 {
        hash | 1 << 63
    }

    #[inline(always)]
    fn home(self) -> usize {
        self as usize
    }
}

/// The upper half of the hash, 31 bits of it: for a table of `u32` ids an
/// 8-byte slot instead of 16, eight to a cache line. The home slot comes
/// from those bits too, so entries that share a home share them in part:
/// a match says only "maybe", and the caller's `eq` checks the entry
/// against its full key (kept in the entry) every time. A table of
/// these tags has at most 2^31 homes (a far larger table than any cap
/// allows: it would still work, with longer runs).
impl Tag for u32 {
    #[inline(always)]
    fn of(hash: u64) -> u32 {
        (hash >> 32) as u32 | 1 << 31
    }

    #[inline(always)]
    fn home(self) -> usize {
        (self & !(1 << 31)) as usize
    }
}

#[derive(Clone, Copy, Default)]
struct Slot<V, T = u64> {
    hash: T,
    value: V,
}

/// Where a probe for an absent entry ended in an [`FpTable`]: its empty
/// slot, and the count of the table's removals and growths then. Once
/// entries have been removed or moved since, the slot may no longer be
/// the first empty one of the run (a removal's backward shift can empty
/// one before it), and an entry put there could not be found.
#[derive(Clone, Copy, Debug)]
pub struct Vacant {
    at: usize,
    moves: u32,
}

impl Vacant {
    /// No slot (the table had none): an insert probes.
    const NONE: Vacant = Vacant {
        at: usize::MAX,
        moves: 0,
    };
}

/// An open-addressing hash table (linear probing, backward-shift deletion)
/// whose callers supply each key's hash. Values sit beside their hash, so
/// a lookup usually touches one cache line, and [`FpTable::prefetch`] can
/// start that load early. Grows by doubling (or at once to the size its
/// owner expects it to need), never above
/// [`MAX_LOAD_EIGHTHS`]/8 full; a table of 4 MiB and more grows in place
/// where it can (see `FpTable::grow`).
#[derive(Clone)]
pub struct FpTable<V, T = u64> {
    slots: Vec<Slot<V, T>>,
    mask: usize,
    len: usize,
    /// The size up to which [`FpTable::about_to_grow`] has had the room
    /// populated: a table whose entries come and go (pending queries)
    /// crosses that point many times, and asks at most once a size.
    prepared: usize,
    /// Counts (wrapping) every removal, clearing and growth: what makes a
    /// [`Vacant`] stale.
    moves: u32,
    /// How many entries the table's owner expects it to hold at the end
    /// ([`FpTable::expect`]; 0 when it has no estimate).
    expected: usize,
}

/// The slots [`FpTable::remove_where`] tests at once.
const SWEEP_CHUNK: usize = 8;

/// How full an [`FpTable`] may be, in eighths (denser is smaller but
/// probes further).
const MAX_LOAD_EIGHTHS: usize = 5;

/// The most times its size a table grows by at once, to make room for
/// the entries its owner expects ([`FpTable::expect`]) instead of
/// doubling: a table whose entries stop coming just after it grew is then
/// at most four times the size doubling would have left it.
const MAX_GROWTH: usize = 8;

/// The slots that hold `entries` without growing: a power of two
/// (`usize::MAX` if there is none so large).
fn slots_for(entries: usize) -> usize {
    (entries.saturating_mul(8) / MAX_LOAD_EIGHTHS)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
}

/// A table that outgrows its memory and is [`ROOM_FROM`] or more moves to
/// memory with room for this many times its new size (address space only,
/// where that is free), so that its next three doublings happen in place.
const ROOM_FACTOR: usize = 8;

/// The size from which a table takes room to grow in place: 4 MiB. Room
/// costs some memory through a pipe (a table with room lands in fresh
/// address space rather than in memory just freed): from 2 MiB, the
/// answered-names flood peaked at 48.8-50.1 MiB and wide at 137-154 MiB;
/// from 4 MiB, 46.1-46.4 and 134-136 (44.4-46.5 and 130-131 with no room),
/// while the 4-tuple flood's 16 MiB table still grows in place (45.4-45.5
/// MiB, 54.6 without).
const ROOM_FROM: usize = 2 * HUGE_PAGE;

impl<V, T> Default for FpTable<V, T> {
    fn default() -> Self {
        FpTable {
            slots: Vec::new(),
            mask: 0,
            len: 0,
            prepared: 0,
            moves: 0,
            expected: 0,
        }
    }
}

impl<V: Copy + Default, T: Tag> FpTable<V, T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated (for memory accounting in tests).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Makes room for the empty table to grow in place up to `entries`
    /// entries, where room costs only address space ([`reserve_room`]):
    /// its doublings then need no copy, and a big one finds its pages
    /// populated ahead of it where this thread asks for that
    /// ([`prefault`]).
    pub fn reserve(&mut self, entries: usize) {
        let slots = slots_for(entries);
        if self.len == 0 && slots.checked_mul(size_of::<Slot<V, T>>()).is_some() {
            reserve_room(&mut self.slots, slots);
        }
    }

    /// Told how many entries the table should hold in the end (an
    /// estimate, which may change): when it must grow, it grows to hold
    /// them, up to [`MAX_GROWTH`] times its size, instead of doubling, so
    /// that its entries are not moved at each of the doublings between.
    pub fn expect(&mut self, entries: usize) {
        self.expected = entries;
        // Past the point where its room was populated for a doubling:
        // the rest of the room it will now grow into is asked for too.
        if self.len > 0 && self.len * 32 >= self.about_to_grow_at() {
            self.about_to_grow();
        }
    }

    /// What [`FpTable::expect`] was last told.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// The size the table grows to next.
    fn next_size(&self) -> usize {
        let size = self.slots.len();
        let doubled = (size * 2).max(16);
        slots_for(self.expected).clamp(doubled, doubled.max(size.saturating_mul(MAX_GROWTH)))
    }

    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        if let Some(slot) = self.slots.get(T::of(hash).home() & self.mask) {
            prefetch_line(slot);
        }
    }

    /// [`FpTable::prefetch`], and the line of the slot after the home
    /// slot: for a table of large slots, whose probe runs often cross
    /// into the next line.
    #[inline(always)]
    pub fn prefetch_run(&self, hash: u64) {
        if let Some(slot) = self.slots.get(T::of(hash).home() & self.mask) {
            let p: *const Slot<V, T> = slot;
            prefetch_line(p);
            prefetch_line(p.wrapping_add(1));
        }
    }

    /// The slot holding the entry with `hash` for which `eq` holds.
    #[inline]
    fn find(&self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<usize> {
        self.search(hash, eq).ok()
    }

    /// The value of the first entry stored under `hash` (for prefetching
    /// what it points to: may be another key's with the same hash).
    #[inline(always)]
    pub fn peek(&self, hash: u64) -> Option<&V> {
        let hash = T::of(hash);
        let slot = self.slots.get(hash.home() & self.mask)?;
        (slot.hash == hash).then_some(&slot.value)
    }

    #[inline]
    pub fn get(&self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&V> {
        let i = self.find(hash, eq)?;
        self.slots.get(i).map(|s| &s.value)
    }

    #[inline]
    pub fn get_mut(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&mut V> {
        let i = self.find(hash, eq)?;
        self.slots.get_mut(i).map(|s| &mut s.value)
    }

    /// The entry with `hash` for which `eq` holds, or where its probe
    /// ended: the empty slot a new entry for `hash` would take, for
    /// [`FpTable::insert_vacant`] to fill without probing again.
    #[inline]
    pub fn get_or_vacant(&self, hash: u64, eq: impl FnMut(&V) -> bool) -> Result<&V, Vacant> {
        match self.search(hash, eq) {
            Ok(i) => self.slots.get(i).map(|s| &s.value).ok_or(Vacant::NONE),
            Err(vacant) => Err(vacant),
        }
    }

    /// [`FpTable::get_or_vacant`], the entry mutable.
    #[inline]
    pub fn get_mut_or_vacant(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Result<&mut V, Vacant> {
        match self.search(hash, eq) {
            Ok(i) => self.slots.get_mut(i).map(|s| &mut s.value).ok_or(Vacant::NONE),
            Err(vacant) => Err(vacant),
        }
    }

    /// The slot holding the entry with `hash` for which `eq` holds, or
    /// the empty slot that ended the probe (for an empty table, which has
    /// no slot 0, [`Vacant::NONE`]).
    #[inline]
    fn search(&self, hash: u64, mut eq: impl FnMut(&V) -> bool) -> Result<usize, Vacant> {
        let hash = T::of(hash);
        let mut i = hash.home() & self.mask;
        loop {
            let Some(slot) = self.slots.get(i) else {
                return Err(Vacant::NONE);
            };
            if slot.hash == T::default() {
                return Err(Vacant {
                    at: i,
                    moves: self.moves,
                });
            }
            if slot.hash == hash && eq(&slot.value) {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Adds an entry the caller knows is not in the table, in the slot
    /// `vacant` names (which [`FpTable::get_or_vacant`] gave for the same
    /// `hash`): the slot [`FpTable::insert_new`] would have probed its way
    /// to, the first empty one from the home slot on. If the table must
    /// grow first, or entries have been removed or moved since, or the
    /// slot taken (`vacant` is then stale), it is [`FpTable::insert_new`].
    /// Not inlined: in the callers' hot paths it would take registers
    /// from the common case, the entry found.
    #[inline(never)]
    pub fn insert_vacant(&mut self, vacant: Vacant, hash: u64, value: V) {
        let fits = (self.len + 1) * 8 <= self.slots.len() * MAX_LOAD_EIGHTHS;
        let current = vacant.moves == self.moves;
        match self.slots.get_mut(vacant.at) {
            Some(s) if fits && current && s.hash == T::default() => {
                *s = Slot {
                    hash: T::of(hash),
                    value,
                };
                self.added();
            }
            _ => self.insert_new(hash, value),
        }
    }

    /// Adds an entry the caller knows is not in the table.
    pub fn insert_new(&mut self, hash: u64, value: V) {
        if (self.len + 1) * 8 > self.slots.len() * MAX_LOAD_EIGHTHS {
            self.grow();
        }
        let hash = T::of(hash);
        if self.place(Slot { hash, value }) {
            self.added();
        }
    }

    /// Counts an entry just put in a slot.
    #[inline]
    fn added(&mut self) {
        self.len += 1;
        // Three quarters of the way from the size it grew to (at half the
        // load that makes it grow) to the next: the last quarter leaves
        // the helper time to populate even an 8 MiB half (at seven
        // eighths, the aggregator took twice the page faults on wide,
        // 8.4 k against 4.1 k, having often caught it up).
        if self.len * 32 == self.about_to_grow_at() {
            self.about_to_grow();
        }
    }

    /// Where [`FpTable::about_to_grow`] is called: when 32 times the
    /// entries held reach this.
    fn about_to_grow_at(&self) -> usize {
        self.slots.len() * MAX_LOAD_EIGHTHS * 3
    }

    /// The table will soon grow: one of 256 KiB and more with room to
    /// grow in place has that room populated now (advised for huge pages
    /// first), so that growing finds its pages ready ([`prefault`]).
    #[cold]
    #[inline(never)]
    fn about_to_grow(&mut self) {
        let size = self.slots.len();
        let target = self.next_size();
        // Slots from `size` up to `prepared` were asked for already.
        let from = self.prepared.max(size);
        if target <= from {
            return;
        }
        self.prepared = target;
        if size_of_val(self.slots.as_slice()) >= prefault::STRETCH / 8
            && let Some(upper) = self
                .slots
                .spare_capacity_mut()
                .get_mut(from - size..target - size)
        {
            advise_huge(upper);
            prefault::request(upper);
        }
    }

    /// Puts `slot` (a stored hash and its value) in the first empty slot
    /// from its home on, wrapping from the last slot to the first; false
    /// if there is none (a table is never full: only the empty table,
    /// which has no slots).
    fn place(&mut self, slot: Slot<V, T>) -> bool {
        let home = slot.hash.home() & self.mask;
        let at = self.empty_from(home).or_else(|| self.empty_from(0));
        self.put(at, slot)
    }

    /// The first empty slot at or after `at`, not wrapping.
    fn empty_from(&self, at: usize) -> Option<usize> {
        let mut i = at;
        while let Some(s) = self.slots.get(i) {
            if s.hash == T::default() {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Puts `slot` at `at`, if that is a slot; whether it was.
    fn put(&mut self, at: Option<usize>, slot: Slot<V, T>) -> bool {
        match at.and_then(|i| self.slots.get_mut(i)) {
            Some(s) => {
                *s = slot;
                true
            }
            None => false,
        }
    }

    /// Doubles the table, or grows it to hold the entries it expects
    /// ([`FpTable::next_size`]). When its vector has room for the new size
    /// (an earlier growth reserved it), the table grows in place: only
    /// the new part is fresh memory, and no second table is filled and
    /// the first dropped. Otherwise the entries move to new memory, with
    /// room for [`ROOM_FACTOR`] times the size when that is [`ROOM_FROM`]
    /// or more and costs only address space. On a machine that zeroes fresh pages
    /// slowly, the tables' growth was the largest share of wide's time.
    fn grow(&mut self) {
        self.moves = self.moves.wrapping_add(1);
        let size = self.next_size();
        if self.slots.capacity() >= size && self.grow_in_place(size) {
            return;
        }
        let mut slots = Vec::new();
        let roomy = size * size_of::<Slot<V, T>>() >= ROOM_FROM;
        if !(roomy && reserve_room(&mut slots, size.saturating_mul(ROOM_FACTOR))) {
            slots.reserve_exact(size);
        }
        advise_huge_first(&mut slots, size);
        // A big table's upper half is populated beside this thread while
        // it clears the lower one ([`prefault`]).
        if size * size_of::<Slot<V, T>>() >= 2 * prefault::STRETCH
            && let Some(upper) = slots.spare_capacity_mut().get(size / 2..size)
        {
            prefault::request(upper);
        }
        slots.resize(size, Slot::default());
        let old = std::mem::replace(&mut self.slots, slots);
        self.mask = size - 1;
        for slot in old.into_iter().filter(|s| s.hash != T::default()) {
            self.place(slot);
        }
    }

    /// Grows the table to `size` slots (a power of two times its size)
    /// within its vector's capacity. Each entry's new home is its old one
    /// or that plus a multiple of the old size. The entries are taken in
    /// slot order from just after the first empty slot, so each probe run
    /// is taken from its start: an entry that stays in the old slots lands
    /// at or before its old slot, among slots already settled, and one
    /// that moves lands in the new slots, which only fill; neither can
    /// leave a hole in a run it has crossed.
    /// The entries before that empty slot (the run that wrapped from the
    /// old last slot to the first) and any entry whose run would now wrap
    /// from the new last slot are set aside and placed last, when every
    /// other entry has settled. False (and nothing changed) if the table
    /// has no empty slot, which its load never allows.
    fn grow_in_place(&mut self, size: usize) -> bool {
        let old_size = self.slots.len();
        let first_empty = match self.empty_from(0) {
            Some(at) => at,
            None if old_size == 0 => 0,
            None => return false,
        };
        advise_huge_first(&mut self.slots, size - old_size);
        self.slots.resize(size, Slot::default());
        self.mask = size - 1;
        let mut last = Vec::new();
        for i in 0..old_size {
            let Some(s) = self.slots.get_mut(i) else { break };
            if s.hash == T::default() {
                continue;
            }
            // In its home slot, which stays its home: it would be taken
            // and put back where it is.
            let home = s.hash.home() & self.mask;
            if home == i {
                continue;
            }
            let slot = std::mem::take(s);
            if i < first_empty {
                last.push(slot);
                continue;
            }
            let at = self.empty_from(home);
            if !self.put(at, slot) {
                last.push(slot);
            }
        }
        for slot in last {
            self.place(slot);
        }
        true
    }

    /// Removes the entry with `hash` for which `eq` holds, and returns it.
    pub fn remove(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<V> {
        let at = self.find(hash, eq)?;
        self.remove_at(at)
    }

    /// Removes and returns the entry with `hash` for which `eq` holds, if
    /// `take` says so: one probe for a lookup that usually removes.
    pub fn take_if(
        &mut self,
        hash: u64,
        eq: impl FnMut(&V) -> bool,
        take: impl FnOnce(&V) -> bool,
    ) -> Option<V> {
        let at = self.find(hash, eq)?;
        if !take(&self.slots.get(at)?.value) {
            return None;
        }
        self.remove_at(at)
    }

    fn remove_at(&mut self, at: usize) -> Option<V> {
        let mut hole = at;
        let removed = self.slots.get(hole)?.value;
        // Backward shift: move later entries of the probe run into the hole
        // when the hole lies between their home slot and where they sit.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let Some(&next) = self.slots.get(j) else { break };
            if next.hash == T::default() {
                break;
            }
            let home = next.hash.home() & self.mask;
            let distance_now = j.wrapping_sub(home) & self.mask;
            let distance_hole = hole.wrapping_sub(home) & self.mask;
            if distance_hole <= distance_now {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = next;
                }
                hole = j;
            }
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = Slot::default();
        }
        self.len -= 1;
        self.moves = self.moves.wrapping_add(1);
        Some(removed)
    }

    /// Removes, in place, the entries `expired` says yes to, handing each
    /// to `removed` first (each once). `expired` is asked of empty slots
    /// too, whose answer is ignored, so it must be a test of the value
    /// alone, with no effect: eight slots at a time are tested without a
    /// branch a slot, and those before the first that goes are passed
    /// over (on a table half full, whether a slot was used was a branch
    /// taken at random). (Rebuilding the table instead held two of them
    /// at once: 16 MiB more at the peak for a full `-a` table.)
    ///
    /// One pass, from just after an empty slot, which no run of entries
    /// crosses. An entry that goes leaves a hole; an entry that stays,
    /// after a hole in its run, moves to the first empty slot from its
    /// home (never past where it is). Every slot from an entry's home to
    /// where it ends is then in use: those before it were in use or were
    /// filled when it moved, and the holes this pass makes later all lie
    /// past it. The backward shift of one removal at a time instead
    /// walked the rest of the run at each of them.
    pub fn remove_where(&mut self, expired: impl Fn(&V) -> bool, mut removed: impl FnMut(&V)) {
        // Never full: the load stays under 5/8.
        let Some(empty) = self.empty_from(0) else {
            return;
        };
        let mask = self.mask;
        let before = self.len;
        let n = self.slots.len();
        let mut i = (empty + 1) & mask;
        let mut done = 0;
        // Whether an entry of the current run has gone.
        let mut hole = false;
        while done < n {
            if !hole
                && done + SWEEP_CHUNK <= n
                && let Some(chunk) = self.slots.get(i..i + SWEEP_CHUNK)
            {
                let going = chunk.iter().enumerate().fold(0u32, |bits, (k, s)| {
                    bits | (u32::from((s.hash != T::default()) & expired(&s.value)) << k)
                });
                let stay = (going.trailing_zeros() as usize).min(SWEEP_CHUNK);
                if stay > 0 {
                    i = (i + stay) & mask;
                    done += stay;
                    continue;
                }
            }
            done += 1;
            let Some(&slot) = self.slots.get(i) else { break };
            if slot.hash == T::default() {
                // The run ends (an empty slot at its turn was empty before
                // the pass: the pass empties only slots it has reached).
                hole = false;
            } else if expired(&slot.value) {
                removed(&slot.value);
                if let Some(s) = self.slots.get_mut(i) {
                    *s = Slot::default();
                }
                self.len -= 1;
                hole = true;
            } else if hole {
                let mut j = slot.hash.home() & mask;
                while j != i && self.slots.get(j).is_some_and(|s| s.hash != T::default()) {
                    j = (j + 1) & mask;
                }
                if j != i {
                    if let Some(s) = self.slots.get_mut(j) {
                        *s = slot;
                    }
                    if let Some(s) = self.slots.get_mut(i) {
                        *s = Slot::default();
                    }
                }
            }
            i = (i + 1) & mask;
        }
        if self.len != before {
            self.moves = self.moves.wrapping_add(1);
        }
    }

    /// Empties the table, keeping its memory.
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(Slot::default());
            self.len = 0;
            self.moves = self.moves.wrapping_add(1);
        }
    }

    /// Every (stored hash, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (T, &V)> {
        self.slots
            .iter()
            .filter(|s| s.hash != T::default())
            .map(|s| (s.hash, &s.value))
    }
}

/// A table whose entries live at least `window` and at most twice that
/// (capture time), with no per-entry bookkeeping: entries go into the
/// current generation; when the window has passed the previous generation
/// is dropped whole and the current one becomes the previous. When the two
/// hold more than `cap` entries, the previous generation (the oldest
/// entries) is dropped early. Keyed by fingerprint alone.
pub struct Generations<V> {
    current: FpTable<V>,
    previous: FpTable<V>,
    started: u64,
    window: u64,
    cap: usize,
}

impl<V: Copy + Default> Generations<V> {
    pub fn new(window: u64, cap: usize) -> Self {
        Generations {
            current: FpTable::default(),
            previous: FpTable::default(),
            started: 0,
            window,
            cap: cap.max(2),
        }
    }

    /// Moves to a new generation when the window has passed; returns how
    /// many entries were dropped for age.
    pub fn advance(&mut self, now: u64) -> u64 {
        if now < self.started.saturating_add(self.window) {
            return 0;
        }
        let mut dropped = self.previous.len() as u64;
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
        if now >= self.started.saturating_add(self.window.saturating_mul(2)) {
            // Nothing was added for a whole window: all of it is old.
            dropped += self.previous.len() as u64;
            self.previous.clear();
        }
        self.started = now;
        dropped
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.current
            .get(key, |_| true)
            .or_else(|| self.previous.get(key, |_| true))
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        self.current
            .remove(key, |_| true)
            .or_else(|| self.previous.remove(key, |_| true))
    }

    /// Removes and returns the entry of `key` if `take` holds for it; an
    /// entry for which it does not stays.
    pub fn take_if(&mut self, key: u64, take: impl Fn(&V) -> bool) -> Option<V> {
        match self.current.find(key, |_| true) {
            Some(at) => {
                if self.current.slots.get(at).is_some_and(|s| take(&s.value)) {
                    self.current.remove_at(at)
                } else {
                    None
                }
            }
            None => self.previous.take_if(key, |_| true, take),
        }
    }

    /// Inserts or replaces; returns how many entries were evicted to stay
    /// within the cap (each generation holds at most half of it).
    pub fn insert(&mut self, key: u64, value: V) -> u64 {
        if !self.previous.is_empty() {
            self.previous.remove(key, |_| true);
        }
        if let Some(v) = self.current.get_mut(key, |_| true) {
            *v = value;
            return 0;
        }
        let evicted = self.make_room();
        self.current.insert_new(key, value);
        evicted
    }

    /// Room in the current generation for one more entry: when it holds
    /// half the cap, the previous generation (the oldest entries) is
    /// dropped and the current one becomes the previous. Returns how many
    /// entries were evicted.
    fn make_room(&mut self) -> u64 {
        if self.current.len() < self.cap / 2 {
            return 0;
        }
        let evicted = self.previous.len() as u64;
        self.previous.clear();
        std::mem::swap(&mut self.current, &mut self.previous);
        evicted
    }

    /// What [`Generations::insert`] of `key` followed by
    /// [`Generations::take_if`] of the entry inserted leaves: no entry
    /// under `key`, and the cap's eviction done if the insert would have
    /// done it. Returns how many entries were evicted.
    pub fn insert_taken(&mut self, key: u64) -> u64 {
        if !self.previous.is_empty() {
            self.previous.remove(key, |_| true);
        }
        if self.current.remove(key, |_| true).is_some() {
            // The insert would have replaced it in place.
            return 0;
        }
        self.make_room()
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Recent SYNs: the fingerprints of (4-tuple, ISN) seen lately, with the
/// second each was seen. A set-associative cache: the fingerprint's low
/// bits pick a set of eight slots that fill one cache line, so a lookup
/// reads exactly one line, which [`SynCache::prefetch`] can start early.
/// A slot is one `u64`: the fingerprint's upper 40 bits and the second
/// (mod 2^24, 194 days). The entries of a set already share its bits, so
/// a match rests on the stored bits alone (39 free ones: bit 24 is forced
/// to 1): a false match, with eight slots, is under 8 x 2^-39 = 2^-36 per
/// lookup (one in about 29 days of 27k SYNs/s). A full set gives way to
/// an entry older than the window, or else to its oldest entry (an
/// eviction, counted).
pub struct SynCache {
    /// Allocated at the first insert.
    sets: Vec<SynSet>,
    set_count: usize,
    window_secs: u64,
}

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct SynSet([u64; 8]);

const SYN_TIME_BITS: u32 = 24;
const SYN_TIME_MASK: u64 = (1 << SYN_TIME_BITS) - 1;

impl SynCache {
    /// Room for at least `cap` entries (a power of two of sets); entries
    /// are recent for `window_secs` (under 2^23 s).
    pub fn new(cap: usize, window_secs: u64) -> Self {
        SynCache {
            sets: Vec::new(),
            set_count: cap.div_ceil(8).next_power_of_two(),
            window_secs,
        }
    }

    #[inline(always)]
    fn set_of(&self, key: u64) -> Option<&SynSet> {
        self.sets.get(key as usize & self.sets.len().wrapping_sub(1))
    }

    fn tag(key: u64) -> u64 {
        // Never 0, so that 0 marks an empty slot.
        (key | (1 << SYN_TIME_BITS)) & !SYN_TIME_MASK
    }

    /// Seconds from `then` to `now`, both mod 2^24; a clock that stepped
    /// back gives 0 (as a saturating subtraction would).
    fn age(now: u64, then: u64) -> u64 {
        let age = now.wrapping_sub(then) & SYN_TIME_MASK;
        if age > SYN_TIME_MASK / 2 { 0 } else { age }
    }

    #[inline(always)]
    pub fn prefetch(&self, key: u64) {
        if let Some(set) = self.set_of(key) {
            prefetch_line(set);
        }
    }

    /// Whether `key` was seen at most the window before `secs`; if not,
    /// notes it as seen at `secs`. Returns (seen, evicted): `evicted` is 1
    /// when a recent entry had to give way.
    pub fn check_and_note(&mut self, key: u64, secs: u64) -> (bool, u64) {
        let tag = Self::tag(key);
        let window = self.window_secs;
        if self.sets.is_empty() {
            self.sets = huge_vec(self.set_count, SynSet::default());
        }
        let mask = self.sets.len() - 1;
        let Some(set) = self.sets.get_mut(key as usize & mask) else {
            return (false, 0);
        };
        let entry = tag | (secs & SYN_TIME_MASK);
        // Slots fill from the front and are never emptied, so the key's
        // own slot, if any, comes before the first empty one.
        for slot in set.0.iter_mut() {
            if *slot == 0 {
                *slot = entry;
                return (false, 0);
            }
            if *slot & !SYN_TIME_MASK == tag {
                if Self::age(secs, *slot) <= window {
                    return (true, 0);
                }
                *slot = entry;
                return (false, 0);
            }
        }
        // A full set: an entry gone stale gives way, else the oldest.
        let mut victim = 0;
        let mut oldest = 0;
        for (i, &slot) in set.0.iter().enumerate() {
            let age = Self::age(secs, slot);
            if age > oldest {
                oldest = age;
                victim = i;
            }
        }
        if let Some(slot) = set.0.get_mut(victim) {
            *slot = entry;
        }
        (false, u64::from(oldest <= window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memo gives what hashing the 4-tuple gives, in whichever order
    /// 4-tuples come: the last one again, the last one reversed, a port
    /// or an address changed, an IPv4 tuple after an IPv6 one whose
    /// addresses begin with the same bytes.
    #[test]
    fn the_tuple_memo_gives_what_hashing_gives() {
        let k = keys();
        let direct = |src: &Addr, dst: &Addr, sp: u16, dp: u16| {
            let (forward, reverse) = (k.pair_hash(src, dst), k.pair_hash(dst, src));
            TupleHashes {
                forward,
                reverse,
                there: k.tuple_hash(forward, sp, dp),
                back: k.tuple_hash(reverse, dp, sp),
            }
        };
        let (a, b) = (Addr::V4([10, 0, 0, 1]), Addr::V4([10, 0, 0, 2]));
        let mut a6 = [0u8; 16];
        a6[..4].copy_from_slice(&[10, 0, 0, 1]);
        let (c, d) = (Addr::V6(a6), Addr::V6([0; 16]));
        let tuples = [
            (a, b, 40000, 443),
            (a, b, 40000, 443),
            (b, a, 443, 40000),
            (b, a, 443, 40000),
            (a, b, 443, 40000),
            (a, b, 40001, 443),
            (b, a, 40000, 443),
            (c, d, 40000, 443),
            (a, d, 40000, 443),
            (d, c, 443, 40000),
            (a, a, 1, 1),
            (a, a, 1, 1),
        ];
        let mut memo = TupleMemo::default();
        for (src, dst, sp, dp) in tuples {
            let h = memo.hashes(k, &src, &dst, sp, dp);
            assert_eq!(h, direct(&src, &dst, sp, dp), "{src:?}:{sp} -> {dst:?}:{dp}");
            assert_eq!(h.connection(), memo.hashes(k, &dst, &src, dp, sp).connection());
        }
        // Reversed, the hashes trade places.
        let h = memo.hashes(k, &a, &b, 1, 2);
        let r = memo.hashes(k, &b, &a, 2, 1);
        assert_eq!(
            (r.forward, r.reverse, r.there, r.back),
            (h.reverse, h.forward, h.back, h.there)
        );
        assert_ne!(h.there, h.back);
    }

    /// `chunk_at` gives the little-endian words of the 16 bytes at `at`,
    /// zeros past the end, for every length and offset (the tail read by
    /// shifting the slice's last 16 bytes down, or byte by byte in a slice
    /// shorter than 16 bytes).
    #[test]
    fn chunk_at_reads_the_bytes_and_zeros_past_the_end() {
        let all: Vec<u8> = (1..=40u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..=all.len() {
            let bytes = &all[..len];
            for at in 0..=len + 2 {
                let mut padded = [0u8; 16];
                for (i, p) in padded.iter_mut().enumerate() {
                    *p = bytes.get(at + i).copied().unwrap_or(0);
                }
                let a = u64::from_le_bytes(padded[..8].try_into().unwrap());
                let b = u64::from_le_bytes(padded[8..].try_into().unwrap());
                assert_eq!(chunk_at(bytes, at), (a, b), "len {len} at {at}");
            }
        }
    }

    /// Random keys (a third of them with the low ten bits set, so that
    /// runs gather every 1024 slots and one wraps from the last slot to the
    /// first at every size), a removal every seventh insertion, through
    /// every growth from empty, against a map: every entry is found, none
    /// is found twice. With room reserved the table grows in place (its
    /// vector is never replaced); without, by moving. For both tags.
    #[test]
    fn growth_in_place_and_by_moving_keeps_every_entry() {
        growth_keeps_every_entry::<u64>();
        growth_keeps_every_entry::<u32>();
    }

    /// A hash whose home bits, in a table of tags `T`, are `raw`'s low
    /// bits (for the 32-bit tags, the upper half holds them).
    fn homed<T: Tag>(raw: u64) -> u64 {
        if size_of::<T>() == 4 {
            raw.rotate_left(32)
        } else {
            raw
        }
    }

    fn growth_keeps_every_entry<T: Tag + std::hash::Hash + std::fmt::Debug>() {
        for room in [0usize, 1 << 17] {
            let mut table: FpTable<u32, T> = FpTable {
                slots: Vec::with_capacity(room),
                ..FpTable::default()
            };
            // By stored tag: hashes that share one (the 32-bit tags keep
            // 31 bits) are taken once, so that `|_| true` finds each.
            let mut model = std::collections::HashMap::new();
            let mut keys = Vec::new();
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for n in 0..30_000u32 {
                let r = next();
                let hash = homed::<T>(if r % 3 == 0 { r | 0x3FF } else { r });
                if model.contains_key(&T::of(hash)) {
                    continue;
                }
                table.insert_new(hash, n);
                model.insert(T::of(hash), (hash, n));
                keys.push(hash);
                if n % 7 == 0 {
                    let gone = keys.swap_remove(next() as usize % keys.len());
                    let expected = model.remove(&T::of(gone)).map(|(_, v)| v);
                    assert_eq!(table.remove(gone, |_| true), expected);
                }
            }
            assert_eq!(table.len(), model.len());
            assert_eq!(table.iter().count(), model.len());
            for &(hash, value) in model.values() {
                let mut found = 0;
                let _ = table.find(hash, |&v| {
                    found += usize::from(v == value);
                    false
                });
                assert_eq!(found, 1, "{hash:x}: {found} times");
                assert_eq!(table.get(hash, |_| true), Some(&value));
            }
            assert!(table.capacity() >= 32768);
            if room > 0 {
                assert_eq!(table.slots.capacity(), room, "grew in place");
            }
        }
    }

    /// Most of the hashes homed in the last few slots of a table of
    /// `crowd` slots (and of every smaller one), bit `crowd` at random;
    /// one in four anywhere: for a table of tags `T`.
    fn crowded<T: Tag>(r: u64, crowd: u64) -> u64 {
        let hash = if r.is_multiple_of(4) {
            r
        } else {
            (r & !(crowd - 1)) | (crowd - 1 - (r >> 60))
        };
        homed::<T>(hash)
    }

    /// Inserts `value` under [`crowded`]'s hash of `r`, unless an entry
    /// of `held` has its stored tag (so that `|_| true` would find either),
    /// and notes it in `held`; whether it did.
    fn insert_crowded<T: Tag>(
        table: &mut FpTable<u32, T>,
        held: &mut Vec<(u64, u32)>,
        r: u64,
        crowd: u64,
        value: u32,
    ) -> bool {
        let hash = crowded::<T>(r, crowd);
        if held.iter().any(|&(h, _)| T::of(h) == T::of(hash)) {
            return false;
        }
        table.insert_new(hash, value);
        held.push((hash, value));
        true
    }

    /// Small tables grown in place many times over, their homes crowded
    /// at the end so that runs wrap from the last slot to the first before
    /// and after the doubling, some entries moving up and some staying:
    /// after each insertion every entry is found. For both tags.
    #[test]
    fn growth_in_place_keeps_runs_that_wrap() {
        runs_that_wrap_are_kept::<u64>();
        runs_that_wrap_are_kept::<u32>();
    }

    fn runs_that_wrap_are_kept<T: Tag>() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for trial in 0..3000 {
            let mut table: FpTable<u32, T> = FpTable {
                slots: Vec::with_capacity(256),
                ..FpTable::default()
            };
            let mut held: Vec<(u64, u32)> = Vec::new();
            let crowd = 16u64 << (trial % 3);
            for n in 0..60u32 {
                if !insert_crowded(&mut table, &mut held, next(), crowd, n) {
                    continue;
                }
                for &(h, v) in &held {
                    assert_eq!(table.get(h, |&w| w == v), Some(&v), "trial {trial}, {h:x}");
                }
            }
            assert_eq!(table.slots.capacity(), 256, "grew in place");
        }
    }

    /// Tables told to expect more entries than they hold grow by up to
    /// eight times at once, in place, their runs crowded at the end to
    /// wrap as in the test above; every entry is found after each
    /// insertion, and no growth is by more than [`MAX_GROWTH`] or by less
    /// than two. For both tags.
    #[test]
    fn growth_to_an_expected_size_keeps_every_entry() {
        growth_to_expected_size::<u64>();
        growth_to_expected_size::<u32>();
    }

    fn growth_to_expected_size<T: Tag>() {
        let mut rng = crate::generate::Rng::new(22);
        let mut factors = std::collections::BTreeSet::new();
        for trial in 0..3000u64 {
            let mut table: FpTable<u32, T> = FpTable {
                slots: Vec::with_capacity(4096),
                ..FpTable::default()
            };
            let mut held: Vec<(u64, u32)> = Vec::new();
            let crowd = 16u64 << (trial % 3);
            for n in 0..120u32 {
                // A new estimate now and then, above or below what is held.
                if n % 10 == 0 {
                    table.expect(rng.below(1200) as usize);
                }
                let before = table.capacity();
                if !insert_crowded(&mut table, &mut held, rng.next_u64(), crowd, n) {
                    continue;
                }
                if before > 0 && table.capacity() != before {
                    factors.insert(table.capacity() / before);
                }
                for &(h, v) in &held {
                    assert_eq!(table.get(h, |&w| w == v), Some(&v), "trial {trial}, {h:x}");
                }
            }
            assert_eq!(table.slots.capacity(), 4096, "grew in place");
        }
        assert_eq!(factors.into_iter().collect::<Vec<_>>(), [2, 4, 8]);
    }

    /// A slot of a table of `u32` ids under 32-bit tags is 8 bytes, eight
    /// to a cache line; under whole hashes, 16.
    #[test]
    fn a_slot_of_ids_under_short_tags_is_eight_bytes() {
        assert_eq!(size_of::<Slot<u32, u32>>(), 8);
        assert_eq!(size_of::<Slot<u32, u64>>(), 16);
    }

    /// Under 32-bit tags, two keys whose stored bits agree are told apart
    /// by `eq` alone: each finds its own entry, and removing one leaves
    /// the other.
    #[test]
    fn short_tags_that_agree_are_told_apart_by_the_entry() {
        let mut table: FpTable<u32, u32> = FpTable::default();
        let (a, b) = (0x1234_5678_0000_0001u64, 0x1234_5678_FFFF_0002u64);
        assert_eq!(u32::of(a), u32::of(b));
        table.insert_new(a, 10);
        table.insert_new(b, 20);
        assert_eq!(table.get(a, |&v| v == 10), Some(&10));
        assert_eq!(table.get(b, |&v| v == 20), Some(&20));
        assert_eq!(table.get(b, |&v| v == 30), None);
        assert_eq!(table.remove(a, |&v| v == 10), Some(10));
        assert_eq!(table.get(b, |&v| v == 20), Some(&20));
        assert_eq!(table.get(a, |&v| v == 10), None);
    }

    /// Without an estimate, or with one it already holds, a table doubles.
    #[test]
    fn a_table_doubles_unless_it_expects_more() {
        let mut table: FpTable<u32> = FpTable::default();
        for n in 0..10u64 {
            table.insert_new(n.wrapping_mul(0x9E37_79B9_7F4A_7C15), 0);
        }
        assert_eq!(table.capacity(), 16);
        assert_eq!(table.next_size(), 32);
        table.expect(5);
        assert_eq!(table.next_size(), 32);
        table.expect(30);
        assert_eq!(table.next_size(), 64);
        table.expect(usize::MAX);
        assert_eq!(table.next_size(), 16 * MAX_GROWTH);
    }

    /// A table that reaches 4 MiB moves to memory with room for eight
    /// times its size (where that costs only address space), and grows in
    /// place from there.
    #[test]
    fn big_tables_take_room_to_grow_in_place() {
        let mut table: FpTable<u32> = FpTable::default();
        for n in 0..200_000u64 {
            table.insert_new(n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n as u32);
        }
        assert_eq!(table.capacity(), 1 << 19);
        let room_from = ROOM_FROM / size_of::<Slot<u32>>();
        if reserving_is_free() {
            assert_eq!(table.slots.capacity(), room_from * ROOM_FACTOR);
        } else {
            assert_eq!(table.slots.capacity(), table.capacity());
        }
        assert!(
            (0..200_000u64)
                .all(|n| table.get(n.wrapping_mul(0x9E37_79B9_7F4A_7C15), |_| true) == Some(&(n as u32)))
        );
    }

    /// A table with room grows in place into it, and a big one has the
    /// room it will grow into populated three quarters of the way to its
    /// growth (with a helper to ask).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_big_table_with_room_finds_its_growth_populated() {
        if !reserving_is_free() {
            return;
        }
        let key = |n: u64| n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut table: FpTable<u32> = FpTable::default();
        table.reserve(1 << 20);
        let room = table.slots.capacity();
        assert_eq!(room, 1 << 21, "room for 2^20 entries at 5/8 load");
        let helper = prefault::start().expect("a helper");
        // 2 MiB of 16-byte slots: it grew to them at 40 960 entries and
        // grows again at 81 921.
        let size = 1 << 17;
        let (about, growth) = (size * 15 / 32, size * 5 / 8);
        let mut n = 0;
        while n < about - 1 {
            table.insert_new(key(n as u64), n as u32);
            n += 1;
        }
        assert_eq!(table.capacity(), size);
        // The room's whole pages (its first one holds the last slots).
        let upper = (table.slots.as_ptr() as usize + size * size_of::<Slot<u32>>()).next_multiple_of(4096);
        let upper_len = size * size_of::<Slot<u32>>() - 4096;
        helper.flush();
        // (Where every mapping takes huge pages, the lower half's last one
        // reaches into the room.)
        let thp_always = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|mode| mode.contains("[always]"));
        if !thp_always {
            assert_eq!(prefault::resident(upper, upper_len).0, 0, "populated early");
        }
        table.insert_new(key(n as u64), n as u32);
        n += 1;
        helper.flush();
        let (populated, pages) = prefault::resident(upper, upper_len);
        assert_eq!(populated, pages, "the room it will grow into");
        let start = table.slots.as_ptr();
        while n <= growth {
            table.insert_new(key(n as u64), n as u32);
            n += 1;
        }
        assert_eq!(table.capacity(), 2 * size);
        assert_eq!(table.slots.as_ptr(), start, "grown in place");
        assert!((0..n).all(|n| table.get(key(n as u64), |_| true) == Some(&(n as u32))));
    }

    #[test]
    fn entries_live_one_to_two_windows() {
        let mut g = Generations::new(10, 100);
        g.insert(1, 'a');
        assert_eq!(g.advance(5), 0);
        assert_eq!(g.get(1), Some(&'a'));
        assert_eq!(g.advance(12), 0); // "a" is now in the previous generation
        assert_eq!(g.get(1), Some(&'a'));
        g.insert(2, 'b');
        assert_eq!(g.advance(23), 1); // "a" dropped
        assert_eq!(g.get(1), None);
        assert_eq!(g.get(2), Some(&'b'));
        assert_eq!(g.advance(100), 1); // a long gap drops everything
        assert!(g.is_empty());
    }

    #[test]
    fn the_cap_drops_the_oldest_generation() {
        let mut g = Generations::new(1_000, 10);
        for k in 0..6 {
            g.insert(k, k);
        }
        g.advance(1_000);
        let mut evicted = 0;
        for k in 6..20 {
            evicted += g.insert(k, k);
            assert!(g.len() <= 10);
        }
        assert!(evicted >= 6);
        assert_eq!(g.get(19), Some(&19));
        assert_eq!(g.get(0), None);
    }

    /// The contents of both generations, for comparing two tables.
    fn generations_of(g: &Generations<u64>) -> [Vec<(u64, u64)>; 2] {
        [&g.current, &g.previous].map(|t| {
            let mut v: Vec<_> = t.iter().map(|(h, &v)| (h, v)).collect();
            v.sort_unstable();
            v
        })
    }

    /// `insert_taken` leaves both generations, and the evictions counted,
    /// exactly as an insert of the key and a take of what it inserted:
    /// through replacements, rotations and the cap, against a table that
    /// does the two.
    #[test]
    fn a_query_taken_at_once_leaves_what_insert_and_take_leave() {
        let mut paired = Generations::new(10, 12);
        let mut model = Generations::new(10, 12);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut now, mut evicted, mut evictions) = (0u64, [0u64; 2], 0);
        for step in 0..20_000u64 {
            now += next(3);
            let expired = [paired.advance(now), model.advance(now)];
            assert_eq!(expired[0], expired[1]);
            // Few keys, so that keys are often pending already.
            let key = 1 + next(24);
            if next(3) == 0 {
                let e = paired.insert_taken(key);
                evicted[0] += e;
                evictions += e;
                evicted[1] += model.insert(key, step);
                assert_eq!(model.take_if(key, |&v| v == step), Some(step));
            } else {
                evicted[0] += paired.insert(key, step);
                evicted[1] += model.insert(key, step);
            }
            if next(4) == 0 {
                let key = 1 + next(24);
                assert_eq!(paired.take_if(key, |_| true), model.take_if(key, |_| true));
            }
            assert_eq!(evicted[0], evicted[1], "step {step}");
            assert_eq!(generations_of(&paired), generations_of(&model), "step {step}");
        }
        assert!(evictions > 0, "the cap was reached by insert_taken too");
    }

    #[test]
    fn a_raw_name_hashes_as_its_folded_form() {
        for len in 1..=70usize {
            for extra in [0usize, 3, 20] {
                let raw: Vec<u8> = (0..len).map(|i| b"AbCxYz09-_\xC3Q"[i % 12]).collect();
                let folded: Vec<u8> = raw.iter().map(u8::to_ascii_lowercase).collect();
                let mut msg = b"hdr".to_vec();
                msg.extend_from_slice(&raw);
                msg.extend(std::iter::repeat_n(b'Z', extra));
                assert_eq!(
                    name_hash_raw(&msg, 3, 3 + len),
                    name_hash(&folded),
                    "{len} {extra}"
                );
            }
        }
        assert_ne!(name_hash(b"ab"), name_hash(b"ab\0"));
        assert_ne!(name_hash(b""), name_hash(b"\0"));
    }

    #[test]
    fn a_debug_print_does_not_show_the_keys() {
        let shown = format!("{:?}", crate::dissect::Dissector::default());
        assert!(shown.contains("keys: Keys(..)"), "{shown}");
        let first = seeds()[0];
        assert!(!shown.contains(&first.to_string()), "{shown}");
    }

    /// Every byte counts, the overlapped ones and the last included, and
    /// the length too; up to 16 bytes it is the name hash.
    #[test]
    fn bytes_hash_sees_every_byte_and_the_length() {
        for len in 0..=160usize {
            let msg: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let h = bytes_hash(&msg);
            if len <= 16 {
                assert_eq!(h, name_hash(&msg), "{len}");
            }
            for at in 0..len {
                let mut changed = msg.clone();
                changed[at] ^= 0x01;
                assert_ne!(bytes_hash(&changed), h, "{len}: byte {at}");
            }
            let mut longer = msg.clone();
            longer.push(0);
            assert_ne!(bytes_hash(&longer), h, "{len}: a zero byte more");
        }
    }

    /// Where a chunk lies counts, not only what it holds: two chunks
    /// swapped (in one running hash or across the two) change it.
    #[test]
    fn bytes_hash_sees_the_order_of_chunks() {
        let chunks: Vec<[u8; 16]> = (0..9u8).map(|i| [i.wrapping_mul(29) ^ 0x5A; 16]).collect();
        let msg: Vec<u8> = chunks.concat();
        let h = bytes_hash(&msg);
        for i in 0..chunks.len() {
            for j in i + 1..chunks.len() {
                let mut swapped = chunks.clone();
                swapped.swap(i, j);
                assert_ne!(bytes_hash(&swapped.concat()), h, "chunks {i} and {j}");
            }
        }
    }

    #[test]
    fn lower8_folds_exactly_the_ascii_capitals() {
        for b in 0..=255u8 {
            for shift in (0..64).step_by(8) {
                let w = 0x4142_5A5B_6061_7F80u64 ^ (u64::from(b) << shift);
                let want = u64::from_le_bytes(w.to_le_bytes().map(|x| x.to_ascii_lowercase()));
                assert_eq!(lower8(w), want, "{w:#x}");
            }
        }
    }

    #[test]
    fn fp_table_finds_what_it_holds_through_growth_and_removal() {
        let mut t: FpTable<u32> = FpTable::default();
        // Hashes that share home slots, to exercise probing and shifting.
        let h = |k: u32| u64::from(k % 13) | (u64::from(k) << 40);
        for k in 0..1000 {
            assert!(t.get(h(k), |&v| v == k).is_none());
            t.insert_new(h(k), k);
        }
        assert_eq!(t.len(), 1000);
        assert!(t.capacity() * 5 >= 1000 * 8);
        for k in (0..1000).step_by(3) {
            assert_eq!(t.remove(h(k), |&v| v == k), Some(k));
        }
        for k in 0..1000 {
            assert_eq!(t.get(h(k), |&v| v == k).is_some(), k % 3 != 0, "{k}");
        }
        t.remove_where(|v| *v % 2 != 0, |_| {});
        for k in 0..1000 {
            assert_eq!(t.get(h(k), |&v| v == k).is_some(), k % 3 != 0 && k % 2 == 0);
        }
        // Hash 0 is stored as 1: both stay findable.
        t.insert_new(0, 5000);
        t.insert_new(1, 5001);
        assert_eq!(t.get(0, |&v| v == 5000), Some(&5000));
        assert_eq!(t.get(1, |&v| v == 5001), Some(&5001));
        assert_eq!(t.iter().count(), t.len());
        t.clear();
        assert!(t.is_empty() && t.get(0, |_| true).is_none());
    }

    #[test]
    fn an_insert_at_the_vacant_slot_places_as_insert_new_does() {
        // Shared homes, runs that wrap (homes at the last slots) and growth.
        let h = |k: u32| {
            let home = if k.is_multiple_of(2) {
                u64::from(k % 7)
            } else {
                u64::MAX - u64::from(k % 5)
            };
            (home & 0xFF_FFFF) | (u64::from(k) << 40)
        };
        let mut probed: FpTable<u32> = FpTable::default();
        let mut vacant: FpTable<u32> = FpTable::default();
        for k in 0..2000 {
            probed.insert_new(h(k), k);
            let Err(at) = vacant.get_or_vacant(h(k), |&v| v == k) else {
                panic!("{k} found before it was added");
            };
            vacant.insert_vacant(at, h(k), k);
            assert_eq!(vacant.get_or_vacant(h(k), |&v| v == k).ok(), Some(&k));
        }
        assert_eq!(vacant.len(), probed.len());
        assert!(probed.iter().eq(vacant.iter()), "every entry in the same slot");
        *vacant.get_mut_or_vacant(h(7), |&v| v == 7).expect("held") = 70;
        assert_eq!(vacant.get(h(7), |&v| v == 70), Some(&70));
    }

    #[test]
    fn a_stale_vacant_slot_is_not_overwritten() {
        let mut t: FpTable<u32> = FpTable::default();
        // The empty table has no slot to give.
        let Err(first) = t.get_or_vacant(5, |_| true) else {
            panic!()
        };
        t.insert_vacant(first, 5, 0);
        // The slot given to one key, taken by another with the same home.
        let Err(at) = t.get_or_vacant(9 << 32 | 5, |_| true) else {
            panic!()
        };
        t.insert_new(8 << 32 | 5, 8);
        t.insert_vacant(at, 9 << 32 | 5, 9);
        // A slot given before the table grew.
        let Err(before) = t.get_or_vacant(3, |_| true) else {
            panic!()
        };
        for k in 100..200u32 {
            t.insert_new(u64::from(k) << 20, k);
        }
        t.insert_vacant(before, 3, 3);
        for (hash, v) in [(5, 0), (8 << 32 | 5, 8), (9 << 32 | 5, 9), (3, 3)] {
            assert_eq!(t.get(hash, |_| true).copied(), Some(v), "{hash:x}");
        }
        assert_eq!(t.len(), 104);
        assert_eq!(t.iter().count(), 104);
        // A slot given before a removal shifted its run back, which left
        // the slot before it empty: the first empty one of the run now.
        let mut t: FpTable<u32> = FpTable::default();
        t.insert_new(1 << 32 | 2, 1);
        t.insert_new(2 << 32 | 2, 2);
        let Err(after_run) = t.get_or_vacant(3 << 32 | 2, |_| true) else {
            panic!()
        };
        assert_eq!(t.remove(1 << 32 | 2, |_| true), Some(1));
        t.insert_vacant(after_run, 3 << 32 | 2, 3);
        for (hash, v) in [(2 << 32 | 2, 2), (3 << 32 | 2, 3)] {
            assert_eq!(t.get(hash, |_| true).copied(), Some(v), "{hash:x}");
        }
        assert_eq!(t.len(), 2);
    }

    /// Sweeps of random tables (both tags, homes crowded at the end so
    /// that runs wrap, long runs of entries that go and stay): exactly the
    /// entries that expire are handed over, each once, every other one is
    /// still found and none of them twice, and a vacant slot from before
    /// the sweep is stale after it.
    #[test]
    fn a_sweep_removes_what_expires_and_finds_the_rest() {
        sweeps_keep_the_rest::<u64>();
        sweeps_keep_the_rest::<u32>();
    }

    fn sweeps_keep_the_rest<T: Tag>() {
        let mut rng = crate::generate::Rng::new(29);
        for trial in 0..2000u64 {
            let mut table: FpTable<u32, T> = FpTable::default();
            let mut held: Vec<(u64, u32)> = Vec::new();
            let crowd = 16u64 << (trial % 4);
            let entries = 10 + rng.below(150) as u32;
            for n in 0..entries {
                insert_crowded(&mut table, &mut held, rng.next_u64(), crowd, n);
            }
            // Every kth entry goes, or a random third, or all, or none.
            let pick = rng.below(4);
            let k = 2 + rng.below(4) as u32;
            let salt = rng.next_u64() as u32;
            let goes = move |v: u32| match pick {
                0 => v.is_multiple_of(k),
                1 => (v ^ salt).wrapping_mul(0x9E37_79B9) >> 30 == 0,
                2 => true,
                _ => false,
            };
            let stale = table
                .get_or_vacant(crowded::<T>(rng.next_u64(), crowd), |_| false)
                .err();
            let mut handed = Vec::new();
            table.remove_where(|&v| goes(v), |&v| handed.push(v));
            handed.sort_unstable();
            let mut expected: Vec<u32> = held.iter().map(|&(_, v)| v).filter(|&v| goes(v)).collect();
            expected.sort_unstable();
            assert_eq!(handed, expected, "trial {trial}: handed over once each");
            assert_eq!(table.len(), held.len() - expected.len(), "trial {trial}");
            for &(h, v) in &held {
                let found = table.get(h, |&w| w == v).is_some();
                assert_eq!(found, !goes(v), "trial {trial}, {h:x}");
            }
            assert_eq!(table.iter().count(), table.len());
            if let Some(vacant) = stale
                && !expected.is_empty()
            {
                assert_ne!(
                    vacant.moves, table.moves,
                    "trial {trial}: the sweep makes a vacant slot stale"
                );
            }
        }
    }

    #[test]
    fn fp_table_sweep_hands_each_entry_over_once_in_wrapped_runs() {
        // Runs of entries that wrap from the last slot to the first.
        let mut t: FpTable<u32> = FpTable::default();
        // Keys under 20 home near slot 60, the rest at the last slots of a
        // table of `cap` (64 once 20 keys are in).
        let hash = |k: u32, cap: u64| {
            let home = if k < 20 {
                u64::from(k % 4) | 0x3C
            } else {
                cap - 1 - u64::from(k % 3)
            };
            home | (u64::from(k) << 40)
        };
        for k in 0..20u32 {
            t.insert_new(hash(k, 0), k);
        }
        let cap = t.capacity() as u64;
        for k in 20..40u32 {
            t.insert_new(hash(k, cap), k);
        }
        let mut seen = vec![0u32; 40];
        t.remove_where(|v| v % 3 == 0, |v| seen[*v as usize] += 1);
        let once: Vec<u32> = (0..40).map(|k| u32::from(k % 3 == 0)).collect();
        assert_eq!(seen, once, "each removed entry handed over once");
        assert_eq!(t.len(), 40 - 14);
        for k in 0..40u32 {
            assert_eq!(t.get(hash(k, cap), |&v| v == k).is_some(), k % 3 != 0, "{k}");
        }
        assert_eq!(t.iter().count(), t.len());
    }

    #[test]
    fn fp_table_removal_keeps_wrapped_probe_runs() {
        // Everything homes at the last slot, so the run wraps to the start.
        let mut t: FpTable<u32> = FpTable::default();
        t.insert_new(1, 0);
        let last = t.capacity() as u64 - 1;
        for k in 1..9 {
            t.insert_new(last | (u64::from(k) << 32), k);
        }
        for k in 1..9 {
            assert_eq!(t.remove(last | (u64::from(k) << 32), |_| true), Some(k));
            for j in k + 1..9 {
                assert!(t.get(last | (u64::from(j) << 32), |_| true).is_some());
            }
        }
        assert_eq!(t.get(1, |_| true), Some(&0));
    }

    #[test]
    fn syn_cache_remembers_within_the_window() {
        let mut c = SynCache::new(64, 120);
        let base = 1_700_000_000;
        assert_eq!(c.check_and_note(7, base), (false, 0));
        assert_eq!(c.check_and_note(7, base), (true, 0));
        assert_eq!(c.check_and_note(7, base + 120), (true, 0));
        assert_eq!(c.check_and_note(8, base), (false, 0));
        assert_eq!(c.check_and_note(7 | (1 << 40), base), (false, 0));
        // A clock that steps back: no time passed.
        assert_eq!(c.check_and_note(7, base - 5), (true, 0));
        // Past the window: not seen, and noted again at the new time.
        assert_eq!(c.check_and_note(7, base + 121), (false, 0));
        assert_eq!(c.check_and_note(7, base + 241), (true, 0));
        assert_eq!(c.sets.iter().flat_map(|s| s.0).filter(|&s| s != 0).count(), 3);
    }

    #[test]
    fn syn_cache_sets_give_way_to_stale_then_oldest_entries() {
        let mut c = SynCache::new(8, 120);
        assert_eq!(c.set_count, 1);
        let base = 1_000;
        let key = |k: u64| k << 40;
        for k in 0..8 {
            assert_eq!(c.check_and_note(key(k), base + k), (false, 0));
        }
        // Full of recent entries: the oldest (k = 0) is evicted.
        assert_eq!(c.check_and_note(key(8), base + 10), (false, 1));
        assert_eq!(c.check_and_note(key(1), base + 10), (true, 0));
        assert_eq!(c.check_and_note(key(0), base + 10), (false, 1));
        // Much later everything is stale: no eviction is counted.
        assert_eq!(c.check_and_note(key(9), base + 500), (false, 0));
        assert_eq!(c.check_and_note(key(9), base + 500), (true, 0));
    }

    #[test]
    fn replacing_a_key_leaves_no_stale_copy() {
        let mut g = Generations::new(10, 100);
        g.insert(7, 1);
        g.advance(10);
        g.insert(7, 2);
        assert_eq!(g.remove(7), Some(2));
        assert_eq!(g.get(7), None);
    }
}
