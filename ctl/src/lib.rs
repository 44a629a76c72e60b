//! `gatehousectl`: the operator's command line for the Gatehouse management API.
//!
//! `args` is the command line, `commands` runs it (one module per noun) over a `connection`
//! (chosen by flags, or by one of the `contexts` in the user's config file), `rollout` waits for
//! data planes after a write, `input` reads files and passwords, `declaration` is the file
//! `export` writes and `apply` reads, `output` does all the printing,
//! and `completion` makes the shell completion scripts.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod args;
mod commands;
mod completion;
mod connection;
mod contexts;
mod declaration;
mod input;
mod output;
mod rollout;

pub use args::Cli;
pub use commands::run;
