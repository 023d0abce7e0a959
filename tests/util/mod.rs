pub mod image;
pub mod registry;
pub mod token_server;
