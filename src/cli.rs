//! Command-line options.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// How the summary is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The original tool's rows, tab-separated.
    Tsv,
    /// One document: rows, per-(client, name) balance and TTL figures, statistics.
    Json,
    /// One JSON object per row, a line each.
    Jsonl,
    /// A human-readable report with verdicts (same as --report).
    Report,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.001 => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds (0.001 or more)")),
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "connbal",
    version,
    about = "How evenly does each client spread its TCP connections over the backends DNS gave it?",
    long_about = "Reads a snoop capture (from a file or standard input), follows each client's DNS \
lookups (A, AAAA, SRV, CNAME chains) and TCP connections, and prints one row per \
(client, backend, port, DNS name):\n\n  source ip <TAB> destination ip:port <TAB> #conns <TAB> #dns <TAB> dns name\n\n\
Example: snoop -o /dev/stdout '(tcp and tcp[13] == 0x02) or (udp and port 53)' | connbal",
    after_help = "Exit status: 0 success; 1 usage or I/O error; 2 not a supported capture, or damaged \
(the summary of what was read is still printed)."
)]
pub struct Cli {
    /// Capture file (`-` for standard input; standard input when none given).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Capture file, as the original tool took it.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file_flag: Option<PathBuf>,

    /// Count ongoing connections too, not only new ones (every TCP segment is looked at).
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Track only names containing TEXT (case-insensitive).
    #[arg(short = 'F', long = "filter", value_name = "TEXT")]
    pub filter: Option<String>,

    /// Report names that only ever gave one address too.
    #[arg(long = "all-names")]
    pub all_names: bool,

    /// No statistics on standard error.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// With -a: forget a connection idle this long (capture time).
    #[arg(long = "idle-timeout", value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub idle_timeout: u64,

    /// Output form.
    #[arg(long = "format", value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Tsv)]
    pub format: OutputFormat,

    /// A human-readable report per client and name: shares, balance and TTL verdicts.
    #[arg(long = "report", conflicts_with = "format")]
    pub report: bool,

    /// Print the (cumulative) summary every SECS seconds of capture time, each block after a `#` line.
    #[arg(long = "interval", value_name = "SECS", value_parser = parse_secs)]
    pub interval: Option<f64>,

    /// Parser threads (default: the number of CPUs).
    #[arg(long = "threads", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
}

impl Cli {
    /// `--report` or `--format`.
    pub fn output_format(&self) -> OutputFormat {
        if self.report {
            OutputFormat::Report
        } else {
            self.format
        }
    }
}
