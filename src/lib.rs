//! connbal: how evenly does each client spread its TCP connections over the
//! backends that DNS gave it, and does it respect TTLs?
//!
//! The pipeline, one module per stage:
//!
//! * [`capture`] recognises the capture format and frames records (snoop,
//!   pcap, pcapng) out of a byte slice;
//! * [`source`] feeds those framers from a memory-mapped file or from a pipe
//!   read into reusable buffers, and hands out batches of records;
//! * [`wire`] holds checked views of the protocol headers, and [`dissect`]
//!   turns one record into compact [`event`]s;
//! * [`aggregate`] applies events in capture order to the DNS and connection
//!   tables, and [`output`] turns the tables into rows;
//! * [`pipeline`] wires the stages together on threads.
#![deny(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod addr;
pub mod aggregate;
pub mod capture;
pub mod cli;
pub mod dissect;
pub mod event;
pub mod fuzzing;
pub mod generate;
pub mod intern;
pub mod memo;
pub mod output;
pub mod pipeline;
pub mod prefault;
pub mod reassembly;
pub mod report;
pub mod source;
pub mod stats;
pub mod synth;
pub mod table;
pub mod wire;
