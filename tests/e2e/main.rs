//! End-to-end tests: the real `switchyard` binary, started on port 0 against in-process
//! mock upstreams on 127.0.0.1:0 that speak OpenAI JSON and SSE and are scripted per
//! test. One test binary; each file covers one area.

#![expect(
    unreachable_pub,
    reason = "support items are shared across this test binary's modules"
)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness code outside #[test] fns: a broken fixture must fail loudly"
)]

mod support;

mod admin;
mod cache;
mod catalogue;
mod chat;
mod cli;
mod cors;
mod deploy;
mod dialects;
mod dialects_sdk;
mod export;
mod failover;
mod failover_policy;
mod hardening;
mod headers;
mod import;
mod interop;
mod keys;
mod messages;
mod metrics;
mod node_sdk;
mod plugin_api;
mod plugins;
mod pool;
mod prometheus;
mod proxy;
mod python_sdk;
mod redis_harness;
mod reload;
mod secrets;
mod state;
mod streaming;
mod surface;
mod tokens;
mod zero_file;
