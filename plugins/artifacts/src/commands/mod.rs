//! One module per `gdcloud artifacts` command: its flags and how its result is rendered.

pub mod extract;
pub mod list_versions;
pub mod load;
pub mod pull;
pub mod push;
pub mod save;
pub mod tree;
pub mod verify;
