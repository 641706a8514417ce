//! Writes a generated workload capture and its ground truth.
//!
//! connbal-gen --connections 4800000 -o syn.snoop --truth syn.truth

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use connbal::generate::{Flood, FloodKind, Format, Workload, generate};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FloodArg {
    Queries,
    Names,
    Srv,
    Tuples,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Snoop,
    Pcap,
    Pcapng,
}

/// Writes a deterministic connbal workload: clients, services (A, AAAA,
/// SRV with and without additional records, CNAME), lookups, connections,
/// noise; and the rows connbal must print for it.
#[derive(Parser, Debug)]
#[command(name = "connbal-gen", version)]
struct Args {
    /// Output capture (`-` for standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Also write the expected connbal output here.
    #[arg(long = "truth", value_name = "FILE")]
    truth: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 50)]
    clients: u32,
    #[arg(long, default_value_t = 40)]
    services: u32,
    #[arg(long, default_value_t = 10_000)]
    connections: u64,
    /// A lookup before every N-th connection of a (client, service).
    #[arg(long = "lookup-every", default_value_t = 3)]
    lookup_every: u32,
    /// Unrelated events per 100 connections.
    #[arg(long = "noise", default_value_t = 100)]
    noise_percent: u32,
    /// Percent of frames with a VLAN tag.
    #[arg(long = "vlan", default_value_t = 10)]
    vlan_percent: u8,
    /// No IPv6 clients (otherwise every tenth client is IPv6).
    #[arg(long = "no-ipv6")]
    no_ipv6: bool,
    /// Whole small-packet streams (for `connbal -a`), not only SYNs.
    #[arg(long)]
    streams: bool,
    #[arg(long, value_enum, default_value_t = FormatArg::Snoop)]
    format: FormatArg,
    /// Mix in hostile traffic from 10.200.0.1 (left out of the ground truth).
    #[arg(long, value_enum)]
    flood: Option<FloodArg>,
    /// Flood events over the whole capture.
    #[arg(long = "flood-count", default_value_t = 1_000_000)]
    flood_count: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let work = Workload {
        seed: args.seed,
        clients: args.clients,
        services: args.services,
        connections: args.connections,
        lookup_every: args.lookup_every,
        noise_percent: args.noise_percent,
        vlan_percent: args.vlan_percent,
        ipv6: !args.no_ipv6,
        streams: args.streams,
        format: match args.format {
            FormatArg::Snoop => Format::Snoop,
            FormatArg::Pcap => Format::Pcap,
            FormatArg::Pcapng => Format::Pcapng,
        },
        flood: args.flood.map(|kind| Flood {
            kind: match kind {
                FloodArg::Queries => FloodKind::Queries,
                FloodArg::Names => FloodKind::Names,
                FloodArg::Srv => FloodKind::SrvTargets,
                FloodArg::Tuples => FloodKind::Tuples,
            },
            count: args.flood_count,
        }),
    };
    let result = (|| -> io::Result<()> {
        let out: Box<dyn Write> = if args.output.as_os_str() == "-" {
            Box::new(io::stdout().lock())
        } else {
            Box::new(File::create(&args.output)?)
        };
        let generated = generate(&work, BufWriter::with_capacity(1 << 20, out))?;
        if let Some(path) = &args.truth {
            std::fs::write(path, generated.truth.as_bytes())?;
        }
        eprintln!(
            "connbal-gen: {} records, {} bytes, {} connections, {} expected rows",
            generated.records,
            generated.bytes,
            generated.connections,
            generated.truth.lines().count()
        );
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connbal-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
