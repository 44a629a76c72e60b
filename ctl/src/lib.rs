//! `gatehousectl`: the operator's command line for the Gatehouse management API.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod cli;
pub mod output;

pub use cli::{Cli, run};
