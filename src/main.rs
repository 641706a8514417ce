use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::thread;

use clap::Parser;
use crossbeam_channel::{Receiver, bounded};

use connbal::aggregate;
use connbal::cli::Cli;
use connbal::pipeline::{self, Config};
use connbal::report;
use connbal::source::{self, Ending, OpenError, Source};
use connbal::stats;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_USAGE: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    let path = match source::input_path(cli.file_flag.clone(), cli.file.clone()) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("connbal: {msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let interrupt = match watch_signals() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("connbal: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let source = match Source::open(path.as_deref()) {
        Ok(s) => s,
        Err(OpenError::Io(msg)) => {
            eprintln!("connbal: {msg}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(OpenError::Format(msg)) => {
            eprintln!("connbal: {msg}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let label = source.label.clone();
    let config = Config {
        interval: cli.interval.map(|secs| (secs * 1e9) as u64),
        threads: cli
            .threads
            .map(usize::from)
            .unwrap_or_else(|| thread::available_parallelism().map_or(2, |n| n.get())),
        aggregate: aggregate::Options {
            all_segments: cli.all,
            filter: cli.filter.as_ref().map(|f| f.to_ascii_lowercase().into_bytes()),
            all_names: cli.all_names,
            idle_timeout: cli.idle_timeout.saturating_mul(1_000_000_000),
            ..aggregate::Options::default()
        },
    };

    let format = cli.output_format();
    let style = report::Style {
        terminal: io::stdout().is_terminal(),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut write_failed: Option<io::Error> = None;
    let mut tick = |agg: &aggregate::Aggregator, start: u64, end: u64| {
        if write_failed.is_some() {
            return;
        }
        let written = out
            .write_all(report::interval_header(start, end).as_bytes())
            .and_then(|()| report::write_summary(agg, format, style, &mut out))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            write_failed = Some(e);
        }
    };
    let ticking = config.interval.is_some();
    // A progress bar for a file, when a person is watching stderr.
    let bar = match source.len_hint() {
        Some(len) if !cli.quiet && io::stderr().is_terminal() => Some(progress_bar(len)),
        _ => None,
    };
    let started = std::time::Instant::now();
    let show = |bytes: u64, records: u64| {
        if let Some(bar) = &bar {
            bar.set_position(bytes);
            let rate = records as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{:.1}M rec/s", rate / 1e6));
        }
    };
    let hooks = pipeline::Hooks {
        interrupt: Some(&interrupt),
        tick: ticking.then_some(&mut tick as pipeline::Tick<'_>),
        progress: bar.is_some().then_some(&show as pipeline::Progress<'_>),
    };
    let outcome = pipeline::run(source, &config, hooks);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let mut status = ExitCode::SUCCESS;
    match &outcome.ending {
        Ending::Complete | Ending::Stopped => {}
        Ending::CutOff { offset, bytes } => eprintln!(
            "connbal: warning: {label}: the capture ends inside a record at byte offset {offset} ({bytes} bytes ignored)"
        ),
        Ending::Damaged { offset, what } => {
            eprintln!(
                "connbal: {label}: damaged capture at byte offset {offset}: {what}; stopped reading there"
            );
            status = ExitCode::from(EXIT_BAD_INPUT);
        }
        Ending::Unsupported { offset, what } => {
            eprintln!("connbal: {label}: {what} (at byte offset {offset}); stopped reading there");
            status = ExitCode::from(EXIT_BAD_INPUT);
        }
        Ending::ReadError(msg) => {
            eprintln!("connbal: {label}: read error: {msg}; stopped reading there");
            status = ExitCode::from(EXIT_USAGE);
        }
    }

    let agg = &outcome.aggregator;
    let mut written = Ok(());
    if write_failed.is_none() {
        if ticking {
            let (first, last) = (
                agg.counters.first_ts.unwrap_or(0),
                agg.counters.last_ts.unwrap_or(0),
            );
            written = out.write_all(
                format!(
                    "# final: {}",
                    report::interval_header(first, last).trim_start_matches("# ")
                )
                .as_bytes(),
            );
        }
        written = written.and_then(|()| report::write_summary(agg, format, style, &mut out));
    }
    let written = written.and_then(|()| out.flush());
    if let Some(e) = write_failed.or(written.err())
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("connbal: cannot write the summary: {e}");
        status = ExitCode::from(EXIT_USAGE);
    }
    if !cli.quiet {
        eprint!("{}", stats::render(&agg.counters, &agg.tally, cli.all));
    }
    // The tables go with the process: freeing them one by one first (on
    // wide, hundreds of MiB handed back a block at a time) only delays
    // the exit.
    std::mem::forget(outcome);
    status
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{bar:24} {bytes}/{total_bytes} {msg} eta {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// SIGINT and SIGTERM arrive here as a message: stop reading, print the
/// summary, exit 0.
fn watch_signals() -> io::Result<Receiver<()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let (tx, rx) = bounded(1);
    thread::Builder::new()
        .name("connbal-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                let _ = tx.try_send(());
            }
        })?;
    Ok(rx)
}
