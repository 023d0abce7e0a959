//! Every integration test, in one binary: one link instead of one per file (each linked the whole
//! dependency tree: 54 binaries of ~250 MB filled a CI machine's disk), and `util` compiled once.
//! Run one file's tests with `tests/run.sh --test integration FILE::` (a name filter).

mod util;

mod artifacts_harbor_fake_api;
mod artifacts_load;
mod artifacts_load_harbor;
mod artifacts_references;
mod artifacts_registry;
mod artifacts_runbook_tree;
mod artifacts_save;
mod artifacts_verify;
mod auth_login;
mod completion;
mod config_cli;
mod configure_docker;
mod discovery;
mod extract_hostile;
mod extract_limits;
mod extract_nonroot;
mod extract_race;
mod extract_umoci;
mod fixtures_selftest;
mod harbor_projects;
mod helper_protocol;
mod install;
mod layout_pull;
mod layout_source;
mod messages;
mod oidc_fixture_selftest;
mod output_formats;
mod plugin;
mod pull_hostile;
mod push_compression;
mod registry_clients;
mod registry_hostile;
mod release_bundle;
mod runbook_demo;
mod s3_client;
mod secret_service;
mod storage_cluster;
mod storage_concurrent;
mod storage_config;
mod storage_cp;
mod storage_cp_hostile;
mod storage_regions;
mod testenv_selftest;
