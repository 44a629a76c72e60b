//! `gatehousectl`: the operator's command line for the Gatehouse management API.
//!
//! `args` is the command line, `commands` runs it (one module per noun) over a `connection`,
//! `rollout` waits for data planes after a write, `input` reads files and passwords, and
//! `output` does all the printing.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod args;
mod commands;
mod connection;
mod input;
mod output;
mod rollout;

pub use args::Cli;
pub use commands::run;
