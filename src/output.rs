//! The aggregator's tables as rows, and the default TSV form of the
//! original tool.

use std::io::{self, Write};
use std::sync::Arc;

use crate::addr::{Addr, Short};
use crate::aggregate::{Aggregator, Backend, Kind, Service};
use crate::intern::{Map, NameId};
use crate::wire::dns::presentation_string;

/// One (client, backend address, port) line of the summary, without its
/// name (which is its service's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub client: Addr,
    pub backend: Addr,
    /// `None` is `?`: an address name the client never connected to.
    pub port: Option<u16>,
    pub conns: u64,
    pub dns: u64,
}

/// Connection counts by backend and port. A backend connected to on one
/// port holds its count itself; only the backends connected to on more
/// than one port (`Aggregator::more_conns`, seldom many) have their
/// counts gathered here, so a summary of many backends walks and stores
/// nothing per backend before its rows.
pub struct PortsByBackend {
    /// Backends with more than one port: where their counts lie in
    /// `entries`.
    many: Map<u32, (u32, u32)>,
    /// Those backends' (port, connections), each one's by port.
    entries: Vec<(u16, u32)>,
}

/// One backend's (port, connections), by port.
pub enum Ports<'a> {
    One([(u16, u32); 1]),
    Listed(&'a [(u16, u32)]),
}

impl std::ops::Deref for Ports<'_> {
    type Target = [(u16, u32)];

    fn deref(&self) -> &[(u16, u32)] {
        match self {
            Ports::One(one) => one,
            Ports::Listed(listed) => listed,
        }
    }
}

impl PortsByBackend {
    pub fn new(agg: &Aggregator) -> Self {
        let mut more: Vec<(u32, u16, u32)> = agg.more_connection_counts().collect();
        more.sort_unstable();
        let mut many = Map::default();
        let mut entries = Vec::with_capacity(more.len() * 2);
        for run in more.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(backend, _, _)) = run.first() else {
                continue;
            };
            let start = entries.len();
            entries.extend(agg.backends.get(backend as usize).and_then(Backend::first_port));
            entries.extend(run.iter().map(|&(_, port, n)| (port, n)));
            if let Some(listed) = entries.get_mut(start..) {
                listed.sort_unstable();
            }
            many.insert(backend, (start as u32, entries.len() as u32));
        }
        PortsByBackend { many, entries }
    }

    /// (port, connections) of backend `id`, `b`, by port.
    #[inline]
    pub fn of<'a>(&'a self, id: u32, b: &Backend) -> Ports<'a> {
        if !self.many.is_empty()
            && let Some(&(from, to)) = self.many.get(&id)
        {
            return Ports::Listed(self.entries.get(from as usize..to as usize).unwrap_or(&[]));
        }
        match b.first_port() {
            Some(first) => Ports::One([first]),
            None => Ports::Listed(&[]),
        }
    }

    fn conns(&self, id: u32, b: &Backend, port: u16) -> u64 {
        let v = self.of(id, b);
        v.binary_search_by_key(&port, |&(p, _)| p)
            .ok()
            .and_then(|i| v.get(i))
            .map_or(0, |&(_, n)| u64::from(n))
    }
}

/// A service's connections, and how many of them were stale (made after
/// the TTL of the latest answer containing their backend had run out).
pub fn service_conns(agg: &Aggregator, ports: &PortsByBackend, service: &Service) -> (u64, u64) {
    agg.backends_of(service).fold((0, 0), |(conns, stale), (id, b)| {
        let n: u64 = ports.of(id, b).iter().map(|&(_, n)| u64::from(n)).sum();
        (conns + n, stale + u64::from(b.stale_conns))
    })
}

/// The reported services with their names in report form, sorted by
/// client, then name (bytes). Each distinct name is rendered once, and
/// services are sorted by the rank of their name: no string is compared
/// per service, and the services are put in order by two counting sorts
/// (by name's rank, then by client), not compared either.
pub fn sorted_services(agg: &Aggregator) -> Vec<(&Service, Arc<str>)> {
    // Each vector is made at its final size: one grown by doubling is
    // copied each time, into pages the kernel has to clear. First the
    // services of each name (ids are dense from 0): the names in use, and
    // where each name's services start once the names are in order.
    let mut of_name = vec![0u32; agg.names.len()];
    for s in agg.services.iter().filter(|s| agg.reported(s)) {
        if let Some(n) = of_name.get_mut(s.name.0 as usize) {
            *n += 1;
        }
    }
    let mut names: Vec<(Arc<str>, NameId)> = (0..of_name.len() as u32)
        .filter(|&id| of_name.get(id as usize).is_some_and(|&n| n > 0))
        .map(|id| (presentation_string(agg.names.name(NameId(id))).into(), NameId(id)))
        .collect();
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // By name id: (name, where its services start in the names' order).
    let mut by_id: Vec<Option<(Arc<str>, u32)>> = vec![None; agg.names.len()];
    let mut start = 0;
    for (name, id) in names {
        if let Some(slot) = by_id.get_mut(id.0 as usize) {
            *slot = Some((name, start));
        }
        start += of_name.get(id.0 as usize).copied().unwrap_or(0);
    }
    // Clients are few: they are put in order once, and each service's
    // client gets its place in that order.
    let clients = agg.client_addrs();
    let mut by_addr: Vec<u32> = (0..clients.len() as u32).collect();
    by_addr.sort_unstable_by_key(|&slot| clients.get(slot as usize).map(Addr::order_key));
    let mut place = vec![0u32; clients.len()];
    for (i, &slot) in by_addr.iter().enumerate() {
        if let Some(p) = place.get_mut(slot as usize) {
            *p = i as u32;
        }
    }
    // The services by their names' rank, with their client's place
    // (a counting sort, counted above), then by place (another): a
    // service's (place, rank) is unique, as a service is one client's
    // lookups of one name.
    // (A slot left unfilled, which the count rules out, has a client
    // past the last and is left out by the sort by client.)
    let mut by_rank = vec![(u32::MAX, u32::MAX); start as usize];
    for (i, s) in agg.services.iter().enumerate() {
        if !agg.reported(s) {
            continue;
        }
        if let Some(Some((_, at))) = by_id.get_mut(s.name.0 as usize)
            && let Some(&client) = place.get(agg.client_slot_of(s) as usize)
            && let Some(slot) = by_rank.get_mut(*at as usize)
        {
            *slot = (client, i as u32);
            *at += 1;
        }
    }
    let by_client = counting_sort(by_rank.iter().copied(), clients.len(), |&(client, _)| client);
    let mut sorted = Vec::with_capacity(by_client.len());
    sorted.extend(by_client.into_iter().filter_map(|(_, i)| {
        let s = agg.services.get(i as usize)?;
        let (name, _) = by_id.get(s.name.0 as usize)?.as_ref()?;
        Some((s, Arc::clone(name)))
    }));
    sorted
}

/// `items` in order of `key`; stable (items of one key stay in the order
/// given), so sorting by a second key after a first orders by both. Items
/// whose key is `keys` or more are left out. `items` is gone over twice
/// (counted, then placed), and the keys once.
fn counting_sort<T: Copy + Default>(
    items: impl Iterator<Item = T> + Clone,
    keys: usize,
    key: impl Fn(&T) -> u32,
) -> Vec<T> {
    // Where each key's items start.
    let mut start = vec![0u32; keys + 1];
    let mut len = 0;
    for item in items.clone() {
        if let Some(n) = start.get_mut((key(&item) as usize).saturating_add(1)) {
            *n += 1;
            len += 1;
        }
    }
    for i in 1..start.len() {
        let before = start.get(i - 1).copied().unwrap_or(0);
        if let Some(n) = start.get_mut(i) {
            *n += before;
        }
    }
    let mut sorted = vec![T::default(); len];
    for item in items {
        if let Some(at) = start.get_mut(key(&item) as usize)
            && let Some(slot) = sorted.get_mut(*at as usize)
        {
            *slot = item;
            *at += 1;
        }
    }
    sorted
}

/// The summary's reported services in order, and the connection counts
/// their rows need: the two are made at the same time, on two threads
/// where there are two CPUs.
pub fn summary_parts(agg: &Aggregator) -> (PortsByBackend, Vec<(&Service, Arc<str>)>) {
    if !parallel() {
        return (PortsByBackend::new(agg), sorted_services(agg));
    }
    std::thread::scope(|scope| {
        let helper = helper().spawn_scoped(scope, || PortsByBackend::new(agg));
        let services = sorted_services(agg);
        let ports = match helper {
            // (A panic on the helper is a bug; it is raised here.)
            Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            // No thread to be had: this one does it.
            Err(_) => PortsByBackend::new(agg),
        };
        (ports, services)
    })
}

/// The summary's helper thread.
fn helper() -> std::thread::Builder {
    std::thread::Builder::new().name("connbal-output".into())
}

/// Appends the rows of one (client, name) (SPEC §5, "Ports shown"), sorted
/// by backend, then port: addresses numerically with IPv4 first, `?`
/// before any port.
pub fn service_rows(agg: &Aggregator, ports: &PortsByBackend, service: &Service, out: &mut Vec<Row>) {
    service_rows_with(agg, ports, service, out, &mut Vec::new());
}

/// [`service_rows`] with a scratch list of ports (kept between calls, so
/// that a walk over many services allocates nothing per service).
fn service_rows_with(
    agg: &Aggregator,
    ports: &PortsByBackend,
    service: &Service,
    out: &mut Vec<Row>,
    wanted: &mut Vec<u16>,
) {
    let client = agg.client_of(service);
    let row = |id: u32, b: &Backend, port: Option<u16>, conns: u64| Row {
        client,
        backend: agg.backend_addr(id),
        port,
        conns,
        dns: u64::from(b.dns),
    };
    let start = out.len();
    wanted.clear();
    match service.kind {
        Kind::Srv => {
            for (id, b) in agg.backends_of(service) {
                wanted.clear();
                wanted.extend(agg.srv_ports(id));
                wanted.extend(ports.of(id, b).iter().map(|&(p, _)| p));
                wanted.sort_unstable();
                wanted.dedup();
                out.extend(wanted.iter().map(|&p| row(id, b, Some(p), ports.conns(id, b, p))));
            }
        }
        Kind::Address => {
            for (id, b) in agg.backends_of(service) {
                wanted.extend(ports.of(id, b).iter().map(|&(p, _)| p));
            }
            wanted.sort_unstable();
            wanted.dedup();
            for (id, b) in agg.backends_of(service) {
                if wanted.is_empty() {
                    out.push(row(id, b, None, 0));
                } else {
                    out.extend(wanted.iter().map(|&p| row(id, b, Some(p), ports.conns(id, b, p))));
                }
            }
        }
    }
    if let Some(mine) = out.get_mut(start..) {
        mine.sort_unstable_by_key(|r| (r.backend.order_key(), r.port));
    }
}

/// Summaries are written out each time their buffer holds this much, so
/// that one of any size is never held in memory whole.
pub const CHUNK: usize = 64 * 1024;

/// Whether the summary may be made on two threads.
fn parallel() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// A block of the summary ends once its services have this many backends
/// (about as many rows): big enough that handing a block over costs
/// little, small enough that a few blocks in flight take little memory.
pub const BLOCK_BACKENDS: usize = 1024;

/// Where each block of `services` starts: a block ends once its services
/// have `block_backends` backends between them.
fn block_starts(services: &[(&Service, Arc<str>)], block_backends: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let mut backends = 0;
    for (i, (s, _)) in services.iter().enumerate() {
        backends += (s.backend_count as usize).max(1);
        if backends >= block_backends && i + 1 < services.len() {
            starts.push(i + 1);
            backends = 0;
        }
    }
    starts
}

/// What a block of the summary is written into.
pub trait Buf: Default + Send {
    fn bytes(&self) -> &[u8];
    fn reset(&mut self);
}

impl Buf for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn reset(&mut self) {
        self.clear();
    }
}

impl Buf for String {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn reset(&mut self) {
        self.clear();
    }
}

/// Writes the summary of `services` a block at a time: `format` writes a
/// block (the index of its first service, its services) into a buffer,
/// and `sink` gets the buffers in order. With two CPUs and more than one
/// block, every other block is formatted on a helper thread while this
/// one formats and writes its own; at most three blocks wait, so memory
/// stays bounded whatever the summary's size. Stops at `sink`'s first
/// error.
pub fn write_blocks<B: Buf>(
    services: &[(&Service, Arc<str>)],
    block_backends: usize,
    format: impl Fn(usize, &[(&Service, Arc<str>)], &mut B) + Sync,
    mut sink: impl FnMut(&B) -> io::Result<()>,
) -> io::Result<()> {
    let starts = block_starts(services, block_backends);
    let blocks = starts.len();
    let block = |k: usize| {
        let from = starts.get(k).copied().unwrap_or(services.len());
        let to = starts.get(k + 1).copied().unwrap_or(services.len());
        (from, services.get(from..to).unwrap_or(&[]))
    };
    // The helper formats the odd blocks and hands them over in order;
    // their buffers come back to it to be reused.
    let (done_tx, done_rx) = crossbeam_channel::bounded::<B>(2);
    let (spare_tx, spare_rx) = crossbeam_channel::unbounded::<B>();
    std::thread::scope(|scope| {
        // Owned here, so that it is dropped on an early return and a
        // helper waiting to hand a block over stops instead of being
        // waited for.
        let done_rx = done_rx;
        let (format, block) = (&format, &block);
        // Without a second CPU, a second block or a thread to be had,
        // this thread does it all.
        let helped = blocks > 1
            && parallel()
            && helper()
                .spawn_scoped(scope, move || {
                    for k in (1..blocks).step_by(2) {
                        let mut buf = spare_rx.try_recv().unwrap_or_default();
                        buf.reset();
                        let (from, part) = block(k);
                        format(from, part, &mut buf);
                        // The writer stopped (an error): so does the helper.
                        if done_tx.send(buf).is_err() {
                            return;
                        }
                    }
                })
                .is_ok();
        let mut own = B::default();
        for k in 0..blocks {
            if helped && k % 2 == 1 {
                // The helper only stops early when this side has.
                let Ok(buf) = done_rx.recv() else { break };
                sink(&buf)?;
                let _ = spare_tx.send(buf);
            } else {
                let (from, part) = block(k);
                own.reset();
                format(from, part, &mut own);
                sink(&own)?;
            }
        }
        Ok(())
    })
}

/// Calls `each` with the name and the rows of every service of `part`, sorted by
/// backend and port. Services given in summary order lie in no order of
/// memory, so they and their first backends are loaded a few ahead.
pub fn each_service_rows(
    agg: &Aggregator,
    ports: &PortsByBackend,
    part: &[(&Service, Arc<str>)],
    mut each: impl FnMut(&str, &[Row]),
) {
    let mut rows = Vec::new();
    let mut wanted = Vec::new();
    for (i, (service, name)) in part.iter().enumerate() {
        // In two steps, the second waiting for the first to arrive: the
        // service, then its first backend (which holds its connection
        // counts) and its address.
        if let Some((ahead, _)) = part.get(i + 8) {
            crate::table::prefetch(*ahead);
        }
        if let Some((ahead, _)) = part.get(i + 4) {
            agg.prefetch_backend(agg.first_backend(ahead));
        }
        rows.clear();
        service_rows_with(agg, ports, service, &mut rows, &mut wanted);
        each(name, &rows);
    }
}

/// Gathers the pieces of a summary into chunks of about [`CHUNK`] bytes
/// before writing them: few writes, and no summary held whole.
pub struct Chunked<'w, W: Write> {
    w: &'w mut W,
    pending: Vec<u8>,
}

impl<'w, W: Write> Chunked<'w, W> {
    pub fn new(w: &'w mut W) -> Self {
        Chunked {
            w,
            pending: Vec::with_capacity(CHUNK + 4096),
        }
    }

    pub fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        // A piece of a chunk or more goes straight out.
        if self.pending.is_empty() && bytes.len() >= CHUNK {
            return self.w.write_all(bytes);
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= CHUNK {
            self.w.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes what is left.
    pub fn finish(self) -> io::Result<()> {
        self.w.write_all(&self.pending)
    }
}

/// The whole TSV summary of `agg`, written a chunk at a time.
pub fn write_summary_tsv(agg: &Aggregator, w: &mut impl Write) -> io::Result<()> {
    write_summary_tsv_blocks(agg, BLOCK_BACKENDS, w)
}

/// [`write_summary_tsv`] in blocks of `block_backends` (tests make them
/// small, so that a small summary is written on two threads).
pub fn write_summary_tsv_blocks(
    agg: &Aggregator,
    block_backends: usize,
    w: &mut impl Write,
) -> io::Result<()> {
    let (ports, services) = summary_parts(agg);
    let mut out = Chunked::new(w);
    let format = |_: usize, part: &[(&Service, Arc<str>)], buf: &mut Vec<u8>| {
        each_service_rows(agg, &ports, part, |name, rows| push_rows(buf, rows, name));
    };
    write_blocks(&services, block_backends, format, |buf: &Vec<u8>| out.put(buf))?;
    out.finish()
}

/// The TSV lines of `rows` (one service's, which share its client and
/// name): each client is formatted once, where the rows' client changes,
/// and each row's line is written after it.
pub fn push_rows(buf: &mut Vec<u8>, rows: &[Row], name: &str) {
    let mut line = Short::default();
    let mut formatted = None;
    let mut client_len = 0;
    for r in rows {
        if formatted != Some(r.client) {
            line.truncate(0);
            r.client.padded_into(&mut line, None);
            line.push(b"\t");
            client_len = line.len();
            formatted = Some(r.client);
        }
        line.truncate(client_len);
        r.backend.padded_into(&mut line, Some(r.port));
        line.push(b"\t");
        line.push_decimal(r.conns);
        line.push(b"\t");
        line.push_decimal(r.dns);
        line.push(b"\t");
        line.append_to(buf);
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'\n');
    }
}

/// One TSV line: `source ip <TAB> destination ip:port <TAB> #conns <TAB>
/// #dns <TAB> name`.
pub fn push_row(buf: &mut Vec<u8>, r: &Row, name: &str) {
    push_rows(buf, std::slice::from_ref(r), name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_sorts_order_by_both_keys_and_keep_ties_in_order() {
        let mut rng = crate::generate::Rng::new(23);
        let mut next = |n: u32| rng.below(u64::from(n)) as u32;
        // (first key, second key, place given): ties on both keys too.
        let items: Vec<(u32, u32, usize)> = (0..5000).map(|i| (next(37), next(11), i)).collect();
        let by_first = counting_sort(items.iter().copied(), 37, |&(a, _, _)| a);
        let both = counting_sort(by_first.iter().copied(), 11, |&(_, b, _)| b);
        let mut want = items.clone();
        want.sort_by_key(|&(a, b, i)| (b, a, i));
        assert_eq!(both, want);
        assert_eq!(
            counting_sort(std::iter::empty::<(u32, u32, usize)>(), 4, |&(a, _, _)| a),
            vec![]
        );
        let out_of_range = [(3, 0), (9, 1), (0, 2), (u32::MAX, 3), (3, 4)];
        assert_eq!(
            counting_sort(out_of_range.iter().copied(), 4, |&(k, _)| k),
            vec![(0, 2), (3, 0), (3, 4)]
        );
    }

    #[test]
    fn rows_are_written_as_their_display_forms() {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[15] = 0x0b;
        let v4 = Addr::V4([10, 0, 20, 1]);
        let v6 = Addr::V6(o);
        let row = |client, backend, port, conns, dns| Row {
            client,
            backend,
            port,
            conns,
            dns,
        };
        // The client changes between rows, lines are short (one fixed
        // copy) and long (IPv6 both sides, the largest counts).
        let rows = [
            row(v4, v4, Some(80), 0, 1),
            row(v4, v6, None, 9, 10),
            row(v6, v6, Some(65535), u64::MAX, u64::MAX),
            row(v6, v4, Some(0), 12345, 0),
            row(v4, v4, Some(443), 1, 99),
        ];
        let name = "a.example.";
        let mut buf = b"x\n".to_vec();
        push_rows(&mut buf, &rows, name);
        let mut want = String::from("x\n");
        for r in &rows {
            want += &format!(
                "{}\t{}\t{}\t{}\t{name}\n",
                r.client.padded(),
                r.backend.padded_with_port(r.port),
                r.conns,
                r.dns
            );
        }
        assert_eq!(String::from_utf8(buf).unwrap(), want);
    }
}
