//! Test harness: [`MockUpstream`] (scripted OpenAI-speaking server), [`TestGateway`]
//! (the real binary on port 0) and a small HTTP client.

mod client;
mod gateway;
mod mock;

pub use client::*;
pub use gateway::*;
pub use mock::*;
