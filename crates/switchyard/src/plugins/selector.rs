//! Where a plugin applies: `models:` globs against the requested model and `keys:`
//! against the caller's key name. Empty lists match everything.

use super::RequestMeta;
use switchyard_config::Glob;

/// A plugin's selectors.
#[derive(Debug, Clone, Default)]
pub(super) struct Selector {
    models: Vec<Glob>,
    keys: Vec<String>,
}

impl Selector {
    /// From the entry's `models:` and `keys:`.
    pub(super) fn new(models: Vec<Glob>, keys: Vec<String>) -> Self {
        Self { models, keys }
    }

    /// Whether the plugin applies to this request. With no request facts (a request
    /// that failed early) only unrestricted plugins apply.
    pub(super) fn matches(&self, meta: Option<&RequestMeta>) -> bool {
        let Some(meta) = meta else {
            return self.models.is_empty() && self.keys.is_empty();
        };
        (self.models.is_empty() || self.models.iter().any(|g| g.matches(&meta.model)))
            && (self.keys.is_empty()
                || meta
                    .caller
                    .key_name()
                    .is_some_and(|k| self.keys.iter().any(|s| s == k)))
    }
}
