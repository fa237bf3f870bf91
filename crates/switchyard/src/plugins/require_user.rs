//! `require_user`: rejects chat requests that do not say which end user they are for.

use super::{BuildCtx, Exchange, Plugin, PluginFuture, Rejection, Verdict};
use http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use switchyard_config::ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_message")]
    message: String,
}

fn default_message() -> String {
    "set `user` to the end user's id".to_owned()
}

struct RequireUser(String);

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?; // unknown keys are reported at plugins[N].config.…
    Ok(Arc::new(RequireUser(s.message)))
}

impl Plugin for RequireUser {
    fn needs_request_body(&self) -> bool {
        true // ask for the parsed JSON only if you read it
    }

    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        let has_user = ex.body.is_some_and(|b| b["user"].is_string());
        let verdict = if has_user {
            Verdict::pass()
        } else {
            Verdict::Reject(Rejection::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "user_required",
                self.0.clone(),
            ))
        };
        Box::pin(std::future::ready(Ok(verdict)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Clients;
    use crate::plugins::chain::{BodyCell, Chain, StageInput};
    use crate::plugins::{Registration, RequestMeta};

    /// The README's worked example, registered the way the README says.
    const REG: Registration = Registration {
        name: "require_user",
        stages: &[switchyard_config::Stage::PreRequest],
        default_stages: &[switchyard_config::Stage::PreRequest],
        build,
    };

    #[test]
    fn the_readme_shows_this_file() {
        let readme = include_str!("../../../../README.md");
        let this = include_str!("require_user.rs");
        let code = this.split("#[cfg(test)]").next().unwrap().trim_end();
        assert!(
            readme.contains(code),
            "README's plugin example differs from require_user.rs"
        );
    }

    #[tokio::test]
    async fn the_readme_example_rejects_requests_without_a_user() {
        let config = switchyard_config::parse(
            "upstreams: [{name: m, dialect: mock}]\nplugins: [{name: require_user}]\n",
            &|_| None,
        )
        .unwrap();
        let chain = Chain::build_with(&config.plugins, &Clients::default(), None, &[REG]).unwrap();
        let meta = RequestMeta::for_tests("m");
        let mut without = BodyCell::new(bytes::Bytes::from_static(br#"{"model":"m"}"#));
        let err = chain
            .run(
                switchyard_config::Stage::PreRequest,
                Some(&meta),
                StageInput::Request,
                &mut without,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "user_required");
        let mut with = BodyCell::new(bytes::Bytes::from_static(br#"{"model":"m","user":"u1"}"#));
        chain
            .run(
                switchyard_config::Stage::PreRequest,
                Some(&meta),
                StageInput::Request,
                &mut with,
            )
            .await
            .unwrap();
    }
}
