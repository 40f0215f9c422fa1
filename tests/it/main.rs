//! Integration tests: the real server on 127.0.0.1:0 with a temp data dir, the real
//! binary, real `ssh-keygen`, a real OpenSSH `sshd`, and the SSH front door driven by the
//! real `ssh` client.

// Helpers here unwrap outside #[test] functions (clippy.toml covers only those): a test
// that unwraps fails loudly, which is what a test should do.
#![allow(clippy::unwrap_used)]
// A test binary has no outside to be reachable from: `pub` on a helper only says it is
// shared between the test modules.
#![allow(unreachable_pub)]

mod front_door_helper;
mod helpers;
mod hosts_helper;
mod idp;
mod oidc_signin;
mod process;
mod sshd_helper;

mod api_flow;
mod api_flow_lists;
mod api_input;
mod api_refusals;
mod api_refusals_requests;
mod audit_log;
mod audit_tail;
mod breakglass;
mod breakglass_review;
mod breakglass_sshd;
mod ca_key;
mod cli;
mod cli_client;
mod cli_request;
mod cli_retry;
mod concurrency;
mod crash;
mod docs;
mod error_codes;
mod evidence;
mod front_door;
mod front_door_commands;
mod front_door_flood;
mod front_door_limits;
mod fuzz_corpus;
mod ha;
mod host_cli;
mod host_cli_sshd;
mod hosts;
mod hosts_attacks;
mod hosts_renew;
mod hosts_replicas;
mod hosts_revoke;
mod hosts_sshd;
mod idempotency;
mod keys;
mod krl_sync;
mod layout;
mod limits;
mod limits_connections;
mod logs;
mod metrics;
mod migrate_store;
mod notify;
mod offboarding;
mod openapi;
mod packaging;
mod packaging_files;
mod pg;
mod pg_ahead;
mod pg_attacks;
mod pg_defer;
mod pg_pipeline;
mod pg_policy;
mod pg_tls;
mod policy_signing;
mod properties;
mod ready;
mod reload;
mod replicas;
mod revocation;
mod revocation_krl;
mod sshd;
mod sshd_restore;
mod state;
mod state_files;
mod state_krl;
mod tls;
mod tokens;
mod tokens_cli;
mod tokens_remembered;
