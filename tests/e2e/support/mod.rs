//! Test harness: [`MockUpstream`] (scripted OpenAI-speaking server), [`TestGateway`]
//! (the real binary on port 0), [`PluginService`] (the far end of `http` plugins) and a
//! small HTTP client, [`Collector`] (the far end of `export:` HTTP sinks), and
//! [`RedisServer`] (a real `redis-server` for the shared `state:` and the `cache:`).

mod client;
mod collector;
mod gateway;
mod mock;
mod native;
mod plugin_service;
mod python;
mod redis;

pub use client::*;
pub use collector::*;
pub use gateway::*;
pub use mock::*;
pub use native::*;
pub use plugin_service::*;
pub use python::*;
pub use redis::*;
