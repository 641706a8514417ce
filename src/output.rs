//! The aggregator's tables as rows, and the default TSV form of the
//! original tool.

use std::io::{self, Write};
use std::rc::Rc;

use crate::addr::{Addr, push_decimal};
use crate::aggregate::{Aggregator, Backend, Kind, Service};
use crate::intern::NameId;
use crate::wire::dns::presentation_string;

/// One (client, backend address, port, name) line of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub client: Addr,
    pub backend: Addr,
    /// `None` is `?`: an address name the client never connected to.
    pub port: Option<u16>,
    pub conns: u64,
    pub dns: u64,
    /// The name in report form.
    pub name: Rc<str>,
}

/// Connection counts grouped by backend: one counting sort of the
/// (backend, port) table, no allocation per backend.
pub struct PortsByBackend {
    start: Vec<u32>,
    entries: Vec<(u16, u32)>,
}

impl PortsByBackend {
    pub fn new(agg: &Aggregator) -> Self {
        let mut start = vec![0u32; agg.backends.len() + 1];
        let mut total = 0;
        for (backend, _, _) in agg.connection_counts() {
            if let Some(s) = start.get_mut(backend as usize + 1) {
                *s += 1;
                total += 1;
            }
        }
        for i in 1..start.len() {
            let before = start.get(i - 1).copied().unwrap_or(0);
            if let Some(s) = start.get_mut(i) {
                *s += before;
            }
        }
        let mut fill = start.clone();
        let mut entries = vec![(0u16, 0u32); total];
        for (backend, port, n) in agg.connection_counts() {
            if let Some(f) = fill.get_mut(backend as usize)
                && let Some(slot) = entries.get_mut(*f as usize)
            {
                *slot = (port, n);
                *f += 1;
            }
        }
        let mut ports = PortsByBackend { start, entries };
        for b in 0..agg.backends.len() {
            let range = ports.range(b as u32);
            if let Some(slice) = ports.entries.get_mut(range) {
                slice.sort_unstable();
            }
        }
        ports
    }

    fn range(&self, backend: u32) -> std::ops::Range<usize> {
        let at = |i: usize| self.start.get(i).copied().unwrap_or(0) as usize;
        at(backend as usize)..at(backend as usize + 1)
    }

    /// (port, connections) of one backend, by port.
    fn of(&self, backend: u32) -> &[(u16, u32)] {
        self.entries.get(self.range(backend)).unwrap_or(&[])
    }

    fn conns(&self, backend: u32, port: u16) -> u64 {
        let v = self.of(backend);
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
        let n: u64 = ports.of(id).iter().map(|&(_, n)| u64::from(n)).sum();
        (conns + n, stale + u64::from(b.stale_conns))
    })
}

/// Every reported row, sorted by client, name, backend, port (SPEC §6).
pub fn rows(agg: &Aggregator) -> Vec<Row> {
    let ports = PortsByBackend::new(agg);
    let mut out = Vec::with_capacity(agg.backends.len());
    for (service, name) in sorted_services(agg) {
        service_rows(agg, &ports, service, &name, &mut out);
    }
    out
}

/// The reported services with their names in report form, sorted by
/// client, then name (bytes). Each distinct name is rendered once, and
/// services are sorted by the rank of their name: no string is compared
/// per service.
pub fn sorted_services(agg: &Aggregator) -> Vec<(&Service, Rc<str>)> {
    let reported: Vec<&Service> = agg.services.iter().filter(|s| agg.reported(s)).collect();
    let mut ids: Vec<NameId> = reported.iter().map(|s| s.name).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut names: Vec<(Rc<str>, NameId)> = ids
        .into_iter()
        .map(|id| (presentation_string(agg.names.name(id)).into(), id))
        .collect();
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // By name id: (rank, name); ids are dense from 0.
    let mut by_id: Vec<Option<(u32, Rc<str>)>> = vec![None; agg.names.len()];
    for (rank, (name, id)) in names.into_iter().enumerate() {
        if let Some(slot) = by_id.get_mut(id.0 as usize) {
            *slot = Some((rank as u32, name));
        }
    }
    let mut keyed: Vec<(Addr, u32, &Service)> = reported
        .into_iter()
        .filter_map(|s| {
            let (rank, _) = by_id.get(s.name.0 as usize)?.as_ref()?;
            Some((agg.client_of(s), *rank, s))
        })
        .collect();
    keyed.sort_unstable_by_key(|&(client, rank, _)| (client, rank));
    keyed
        .into_iter()
        .filter_map(|(_, _, s)| {
            let (_, name) = by_id.get(s.name.0 as usize)?.as_ref()?;
            Some((s, Rc::clone(name)))
        })
        .collect()
}

/// Appends the rows of one (client, name) (SPEC §5, "Ports shown"), sorted
/// by backend, then port: addresses numerically with IPv4 first, `?`
/// before any port.
pub fn service_rows(
    agg: &Aggregator,
    ports: &PortsByBackend,
    service: &Service,
    name: &Rc<str>,
    out: &mut Vec<Row>,
) {
    let row = |id: u32, b: &Backend, port: Option<u16>, conns: u64| Row {
        client: agg.client_of(service),
        backend: agg.backend_addr(id),
        port,
        conns,
        dns: u64::from(b.dns),
        name: Rc::clone(name),
    };
    let start = out.len();
    let mut wanted: Vec<u16> = Vec::new();
    match service.kind {
        Kind::Srv => {
            for (id, b) in agg.backends_of(service) {
                wanted.clear();
                wanted.extend(agg.srv_ports(id));
                wanted.extend(ports.of(id).iter().map(|&(p, _)| p));
                wanted.sort_unstable();
                wanted.dedup();
                out.extend(wanted.iter().map(|&p| row(id, b, Some(p), ports.conns(id, p))));
            }
        }
        Kind::Address => {
            for (id, _) in agg.backends_of(service) {
                wanted.extend(ports.of(id).iter().map(|&(p, _)| p));
            }
            wanted.sort_unstable();
            wanted.dedup();
            for (id, b) in agg.backends_of(service) {
                if wanted.is_empty() {
                    out.push(row(id, b, None, 0));
                } else {
                    out.extend(wanted.iter().map(|&p| row(id, b, Some(p), ports.conns(id, p))));
                }
            }
        }
    }
    if let Some(mine) = out.get_mut(start..) {
        mine.sort_unstable_by_key(|r| (r.backend, r.port));
    }
}

/// `source ip <TAB> destination ip:port <TAB> #conns <TAB> #dns <TAB> name`
pub fn write_tsv(rows: &[Row], w: &mut impl Write) -> io::Result<()> {
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    for r in rows {
        push_row(&mut buf, r);
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// Summaries are written out each time their buffer holds this much, so
/// that one of any size is never held in memory whole.
pub const CHUNK: usize = 64 * 1024;

/// Walks the summary's rows in order, a (client, name) at a time: `each`
/// gets one service's rows, sorted by backend and port. `services` come
/// from [`sorted_services`]; visited in that order, they lie in no order
/// of memory, so they and their first backends are loaded a few ahead.
/// Stops at `each`'s first error.
pub fn each_service_rows(
    agg: &Aggregator,
    ports: &PortsByBackend,
    services: &[(&Service, Rc<str>)],
    mut each: impl FnMut(&[Row]) -> io::Result<()>,
) -> io::Result<()> {
    let mut rows = Vec::new();
    for (i, (service, name)) in services.iter().enumerate() {
        if let Some((ahead, _)) = services.get(i + 8) {
            crate::table::prefetch(*ahead);
        }
        if let Some((ahead, _)) = services.get(i + 4) {
            agg.prefetch_first_backend(ahead);
        }
        rows.clear();
        service_rows(agg, ports, service, name, &mut rows);
        each(&rows)?;
    }
    Ok(())
}

/// The whole TSV summary of `agg`, written a chunk at a time: the same
/// bytes as `write_tsv(&rows(agg), w)` without holding every row.
pub fn write_summary_tsv(agg: &Aggregator, w: &mut impl Write) -> io::Result<()> {
    let ports = PortsByBackend::new(agg);
    let services = sorted_services(agg);
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    each_service_rows(agg, &ports, &services, |rows| {
        for r in rows {
            push_row(&mut buf, r);
        }
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
        Ok(())
    })?;
    w.write_all(&buf)
}

fn push_row(buf: &mut Vec<u8>, r: &Row) {
    r.client.write_padded(buf, None);
    buf.push(b'\t');
    r.backend.write_padded(buf, Some(r.port));
    buf.push(b'\t');
    push_decimal(buf, r.conns);
    buf.push(b'\t');
    push_decimal(buf, r.dns);
    buf.push(b'\t');
    buf.extend_from_slice(r.name.as_bytes());
    buf.push(b'\n');
}
