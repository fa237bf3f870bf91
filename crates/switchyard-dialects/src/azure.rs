//! Azure OpenAI request paths. Azure's bodies are OpenAI's, so only the URL changes:
//! the deployment form `/openai/deployments/{deployment}/{operation}?api-version=…`
//! ([`deployment_path`]), the v1 form `/openai/v1/{operation}` ([`v1_path`]), and the
//! model → deployment map ([`deployment_for`]). Owns percent-encoding of the pieces it
//! puts in a path; does not own the base URL or the `api-key` header.

/// The `api-version` used when the configuration names none (the GA version of the
/// data-plane inference API).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// `/openai/deployments/<deployment>/<operation>?api-version=<version>`, the deployment
/// name and version percent-encoded. `operation` is a fixed path such as
/// `chat/completions`, `completions` or `embeddings` and is written as is.
pub fn deployment_path(deployment: &str, operation: &str, api_version: &str) -> String {
    format!(
        "/openai/deployments/{}/{}?api-version={}",
        percent_encode(deployment),
        operation.trim_matches('/'),
        percent_encode(api_version)
    )
}

/// `/openai/v1/<operation>` (the model stays in the body), with `?api-version=<v>`
/// when one is given (e.g. `preview`).
pub fn v1_path(operation: &str, api_version: Option<&str>) -> String {
    let operation = operation.trim_matches('/');
    match api_version {
        Some(version) => format!(
            "/openai/v1/{operation}?api-version={}",
            percent_encode(version)
        ),
        None => format!("/openai/v1/{operation}"),
    }
}

/// The deployment serving `model`, from `(model, deployment)` pairs (LibreChat's
/// `deployments` map); the model name itself when it is not mapped.
pub fn deployment_for<'a>(deployments: &'a [(String, String)], model: &'a str) -> &'a str {
    deployments
        .iter()
        .find(|(m, _)| m == model)
        .map_or(model, |(_, deployment)| deployment.as_str())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the result is
/// safe as one path segment and as a query value.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_path_names_deployment_operation_and_version() {
        assert_eq!(
            deployment_path("gpt-4o", "chat/completions", DEFAULT_API_VERSION),
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            deployment_path("emb", "embeddings", "2024-10-21"),
            "/openai/deployments/emb/embeddings?api-version=2024-10-21"
        );
    }

    #[test]
    fn deployment_path_percent_encodes_the_deployment_and_the_version() {
        assert_eq!(
            deployment_path("my dep/1?x=é", "completions", "2025-01-01 preview&a=b"),
            "/openai/deployments/my%20dep%2F1%3Fx%3D%C3%A9/completions\
             ?api-version=2025-01-01%20preview%26a%3Db"
        );
    }

    #[test]
    fn v1_path_adds_the_version_only_when_given() {
        assert_eq!(
            v1_path("chat/completions", None),
            "/openai/v1/chat/completions"
        );
        assert_eq!(
            v1_path("/responses", Some("preview")),
            "/openai/v1/responses?api-version=preview"
        );
        assert_eq!(
            v1_path("embeddings", Some("a b")),
            "/openai/v1/embeddings?api-version=a%20b"
        );
    }

    #[test]
    fn deployment_for_maps_known_models_and_passes_others_through() {
        let map = vec![
            ("gpt-4o".to_owned(), "prod-gpt4o".to_owned()),
            ("gpt-4o-mini".to_owned(), "mini-eu".to_owned()),
        ];
        assert_eq!(deployment_for(&map, "gpt-4o"), "prod-gpt4o");
        assert_eq!(deployment_for(&map, "gpt-4o-mini"), "mini-eu");
        assert_eq!(deployment_for(&map, "o3"), "o3");
        assert_eq!(deployment_for(&[], "o3"), "o3");
    }

    #[test]
    fn unreserved_characters_are_kept_and_the_rest_escaped() {
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
        assert_eq!(percent_encode("%/ +"), "%25%2F%20%2B");
    }
}
