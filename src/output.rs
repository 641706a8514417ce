//! The aggregator's tables as rows, and the default TSV form of the
//! original tool.

use std::io::{self, Write};

use std::rc::Rc;

use crate::addr::Addr;
use crate::aggregate::{Aggregator, Kind};
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

/// Every reported row, sorted by client, name, backend, port (SPEC §6).
pub fn rows(agg: &Aggregator) -> Vec<Row> {
    // Ports connected to, per backend.
    let mut ports: Vec<Vec<(u16, u32)>> = vec![Vec::new(); agg.backends.len()];
    for (&(backend, port), &n) in &agg.conns {
        if let Some(v) = ports.get_mut(backend as usize) {
            v.push((port, n));
        }
    }
    for v in &mut ports {
        v.sort_unstable();
    }
    let conns_at = |backend: u32, port: u16| -> u64 {
        ports
            .get(backend as usize)
            .and_then(|v| {
                v.binary_search_by_key(&port, |&(p, _)| p)
                    .ok()
                    .and_then(|i| v.get(i))
            })
            .map_or(0, |&(_, n)| u64::from(n))
    };

    let mut out = Vec::new();
    for service in &agg.services {
        if !agg.reported(service) {
            continue;
        }
        let name: Rc<str> = presentation_string(agg.names.name(service.name)).into();
        let backends = service
            .backends
            .iter()
            .filter_map(|&id| agg.backends.get(id as usize).map(|b| (id, b)));
        match service.kind {
            Kind::Srv => {
                for (id, b) in backends {
                    let mut wanted: Vec<u16> = b.srv_ports.clone();
                    wanted.extend(ports.get(id as usize).into_iter().flatten().map(|&(p, _)| p));
                    wanted.sort_unstable();
                    wanted.dedup();
                    for port in wanted {
                        out.push(Row {
                            client: service.client,
                            backend: b.addr,
                            port: Some(port),
                            conns: conns_at(id, port),
                            dns: u64::from(b.dns),
                            name: name.clone(),
                        });
                    }
                }
            }
            Kind::Address => {
                let mut used: Vec<u16> = service
                    .backends
                    .iter()
                    .flat_map(|&id| ports.get(id as usize).into_iter().flatten().map(|&(p, _)| p))
                    .collect();
                used.sort_unstable();
                used.dedup();
                for (id, b) in backends {
                    let row = |port: Option<u16>| Row {
                        client: service.client,
                        backend: b.addr,
                        port,
                        conns: port.map_or(0, |p| conns_at(id, p)),
                        dns: u64::from(b.dns),
                        name: name.clone(),
                    };
                    if used.is_empty() {
                        out.push(row(None));
                    } else {
                        out.extend(used.iter().map(|&p| row(Some(p))));
                    }
                }
            }
        }
    }
    out.sort_unstable_by(|a, b| {
        (a.client, a.name.as_bytes(), a.backend, a.port).cmp(&(
            b.client,
            b.name.as_bytes(),
            b.backend,
            b.port,
        ))
    });
    out
}

/// `source ip <TAB> destination ip:port <TAB> #conns <TAB> #dns <TAB> name`
pub fn write_tsv(rows: &[Row], w: &mut impl Write) -> io::Result<()> {
    for r in rows {
        write!(
            w,
            "{}\t{}\t{}\t{}\t",
            r.client.padded(),
            r.backend.padded_with_port(r.port),
            r.conns,
            r.dns
        )?;
        w.write_all(r.name.as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}
