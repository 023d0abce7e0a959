//! One module per user operation: the API the plugins call. An op takes options and returns data;
//! the plugin decides how to render it (text or JSON).

pub mod configure_docker;
pub mod list_versions;
pub mod pull;
pub mod push;
pub mod tree;
