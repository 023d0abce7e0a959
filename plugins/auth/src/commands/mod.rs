//! One module per `gdcloud auth` command: its flags and how its result is rendered.

pub mod configure_docker;
pub mod login;
pub mod print_identity_token;
pub mod revoke;
