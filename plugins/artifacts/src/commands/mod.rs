//! One module per `gdcloud artifacts` command: its flags and how its result is rendered.

pub mod list_versions;
pub mod registry_args;
