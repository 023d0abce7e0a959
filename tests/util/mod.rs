//! Fixtures shared by the integration tests: a private environment per test, real registries (with
//! a token server of ours), a tiny image, a headless keyring, and a real OpenID provider.
#![allow(dead_code)]

pub mod cosign;
pub mod env;
pub mod garage;
pub mod harbor_fake;
pub mod hostile;
pub mod hostile_s3;
pub mod image;
pub mod keyring;
pub mod kube;
pub mod oidc;
pub mod proxy;
pub mod registry;
pub mod s3;
pub mod storage;
pub mod token_server;
pub mod xattr;
