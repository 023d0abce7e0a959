//! One module per `gdcloud storage` command: its flags and how its result is rendered.

pub mod configure;
pub mod env;
pub mod exec;
pub mod source;
