//! One module per `gdcloud auth` command: its flags and how its result is rendered.

pub mod configure_docker;
