//! One module per `gdcloud storage` command: its flags and how its result is rendered.

pub mod configure;
pub mod cp;
pub mod env;
pub mod exec;
pub mod ls;
pub mod source;
