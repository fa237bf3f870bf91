//! The data-plane endpoints the gateway proxies, named once for every layer (the
//! pipeline dispatches on them, plugins see them, upstreams map them to URLs).

/// A proxied endpoint, by its path under the base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/chat/completions`
    Chat,
    /// `/completions`
    Completions,
    /// `/embeddings`
    Embeddings,
    /// Any other path under `/v1/` (moderations, rerank, images, audio, responses…):
    /// routed by the body's `model` when it has one, forwarded untouched to the same
    /// path under the upstream's base URL.
    Other,
}

impl Endpoint {
    /// The path under an upstream's base URL (no leading slash).
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Other => "",
        }
    }
}
