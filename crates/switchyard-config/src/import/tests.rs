//! Importers against small foreign files, and `include:` through an in-memory reader.

use crate::{import_to_yaml, parse, parse_with_files, Auth, Config, ConfigErrors, Strategy};

const LITELLM: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: 60
  - model_name: fast
    litellm_params:
      model: groq/llama-3.1-8b-instant
      api_key: os.environ/GROQ_API_KEY
      weight: 3
  - model_name: fast
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY
  - model_name: local
    litellm_params:
      model: ollama/llama3
      api_base: http://ollama:11434
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-sonnet
router_settings:
  routing_strategy: least-busy
  num_retries: 2
  fallbacks: [{fast: [local]}]
general_settings:
  master_key: sk-literal-master-1234
litellm_settings:
  drop_params: true
"#;

fn env(name: &str) -> Option<String> {
    name.ends_with("_KEY").then(|| format!("value-of-{name}"))
}

fn files(name: &str) -> Result<Vec<(String, String)>, String> {
    let one = |text: &str| Ok(vec![(name.to_owned(), text.to_owned())]);
    match name {
        "litellm.yaml" => one(LITELLM),
        "librechat.yaml" => one(LIBRECHAT),
        "plugins/" => Ok(vec![
            (
                "plugins/anthropic.json".to_owned(),
                PLUGIN_ANTHROPIC.to_owned(),
            ),
            ("plugins/custom.json".to_owned(), PLUGIN_CUSTOM.to_owned()),
        ]),
        other => Err(format!("cannot read {other}")),
    }
}

fn include(main: &str) -> Result<Config, ConfigErrors> {
    parse_with_files(main, &env, &files)
}

fn warning_paths(c: &Config) -> Vec<String> {
    c.warnings.iter().map(|w| w.path.clone()).collect()
}

#[test]
fn litellm_model_list_becomes_upstreams_and_routes() {
    let c = include("include: [litellm.yaml]\n").unwrap();
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.to_string()).collect();
    assert_eq!(names, ["openai", "groq", "ollama"]);
    assert_eq!(c.upstreams[0].base_url, "https://api.openai.com/v1");
    assert_eq!(c.upstreams[2].base_url, "http://ollama:11434/v1");
    match &c.upstreams[1].auth {
        Auth::Bearer(k) => assert_eq!(k.expose(), "value-of-GROQ_API_KEY"),
        _ => panic!("bearer expected"),
    }
    let fast = c.routes.iter().find(|r| &*r.model == "fast").unwrap();
    assert_eq!(fast.targets.len(), 2);
    assert_eq!(fast.strategy, Strategy::Weighted);
    assert_eq!(fast.fallbacks, ["local"]);
    assert_eq!(c.routing.max_attempts, 3);
    assert_eq!(c.keys.len(), 1);
}

#[test]
fn litellm_settings_without_an_equivalent_are_warnings_with_their_path() {
    let c = include("include: [litellm.yaml]\n").unwrap();
    let paths = warning_paths(&c);
    for want in [
        "include[0] (litellm.yaml) model_list[0].litellm_params.rpm",
        "include[0] (litellm.yaml) model_list[4].litellm_params.model",
        "include[0] (litellm.yaml) router_settings.routing_strategy",
        "include[0] (litellm.yaml) litellm_settings.drop_params",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
}

#[test]
fn a_literal_master_key_is_kept_when_included_but_never_shown() {
    let c = include("include: [litellm.yaml]\n").unwrap();
    let crate::KeyValue::Plain(key) = &c.keys[0].key else {
        panic!("the master key is kept as a plain key");
    };
    assert_eq!(key.expose(), "sk-literal-master-1234");
    assert_eq!(c.redactor.message("x sk-literal-master-1234"), "x ***");
}

#[test]
fn import_prints_native_yaml_without_literal_keys_that_parses_back() {
    let (_, yaml, warnings) = import_to_yaml(LITELLM).unwrap();
    assert!(!yaml.contains("sk-literal-master-1234"), "{yaml}");
    assert!(yaml.contains("${LITELLM_MASTER_KEY}"), "{yaml}");
    assert!(warnings
        .iter()
        .any(|w| w.path == "general_settings.master_key"));
    let c = parse(&yaml, &env).unwrap();
    assert_eq!(c.upstreams.len(), 3);
    assert_eq!(c.routes.len(), 3);
}

#[test]
fn include_name_clashes_are_errors_at_the_include() {
    let e =
        include("upstreams: [{name: openai, base_url: 'http://x/v1'}]\ninclude: [litellm.yaml]\n")
            .unwrap_err();
    assert_eq!(e.0[0].path, "include[0]");
    assert!(e.0[0].message.contains("`openai`"), "{e}");
}

#[test]
fn the_config_s_own_routing_wins_and_the_include_says_so() {
    let c = include("routing: {max_attempts: 7}\ninclude: [litellm.yaml]\n").unwrap();
    assert_eq!(c.routing.max_attempts, 7);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.path == "include[0]" && w.message.contains("routing.max_attempts")));
}

#[test]
fn include_needs_a_file_and_a_known_format() {
    let e = parse("include: [litellm.yaml]\n", &env).unwrap_err();
    assert_eq!(e.0[0].path, "include[0]");
    let e = include("include: [missing.yaml]\n").unwrap_err();
    assert!(e.0[0].message.contains("cannot read"), "{e}");
}

const LIBRECHAT: &str = r#"
version: 1.1.5
endpoints:
  custom:
    - name: groq
      apiKey: '${GROQ_API_KEY}'
      baseURL: 'https://api.groq.com/openai/v1/'
      models:
        default: [llama3-70b-8192, llama3-8b-8192]
        fetch: true
      titleConvo: true
      addParams: {safe_prompt: true}
    - name: mine
      apiKey: user_provided
      baseURL: 'http://vllm:8000/v1'
      headers:
        X-Team: ml
        X-User: '{{LIBRECHAT_USER_ID}}'
  azureOpenAI: {}
"#;

#[test]
fn librechat_custom_endpoints_become_upstreams() {
    let c = include("include: [librechat.yaml]\n").unwrap();
    let groq = &c.upstreams[0];
    assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
    assert_eq!(
        groq.models.as_deref().unwrap(),
        ["llama3-70b-8192", "llama3-8b-8192"]
    );
    assert!(groq.fetch_models);
    assert!(matches!(c.upstreams[1].auth, Auth::Passthrough));
    assert_eq!(c.upstreams[1].headers.len(), 1);
    let paths = warning_paths(&c);
    for want in [
        "include[0] (librechat.yaml) version",
        "include[0] (librechat.yaml) endpoints.custom[0].titleConvo",
        "include[0] (librechat.yaml) endpoints.custom[0].addParams",
        "include[0] (librechat.yaml) endpoints.custom[1].headers.X-User",
        "include[0] (librechat.yaml) endpoints.azureOpenAI",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
}

#[test]
fn unknown_formats_are_refused() {
    let e = import_to_yaml("server: {}\n").unwrap_err();
    assert!(e.0[0].message.contains("LiteLLM"), "{e}");
}

const PLUGIN_CUSTOM: &str = r#"{
  "id": "custom-provider",
  "name": "Custom",
  "type": "completion",
  "endpoint": "https://api.example.com/v1/chat/completions",
  "auth": {"header": "x-api-key", "prefix": "", "key_env": "CUSTOM_API_KEY"},
  "model_map": ["custom-large", "custom-small"],
  "rate_limit": 10
}"#;

const PLUGIN_ANTHROPIC: &str = r#"{
  "id": "anthropic",
  "endpoint": "https://api.anthropic.com/v1/messages",
  "auth": {"header": "x-api-key", "prefix": "", "key_env": "ANTHROPIC_API_KEY"},
  "model_map": ["claude-3-5-sonnet"]
}"#;

#[test]
fn libre_webui_plugins_from_a_directory_become_upstreams() {
    let c = include("include: [plugins/]\n").unwrap();
    assert_eq!(c.upstreams.len(), 1);
    let up = &c.upstreams[0];
    assert_eq!(&*up.name, "custom-provider");
    assert_eq!(up.base_url, "https://api.example.com/v1");
    assert_eq!(
        up.models.as_deref().unwrap(),
        ["custom-large", "custom-small"]
    );
    match &up.auth {
        Auth::Header { name, prefix, key } => {
            assert_eq!(name, "x-api-key");
            assert_eq!(prefix, "");
            assert_eq!(key.expose(), "value-of-CUSTOM_API_KEY");
        }
        _ => panic!("header auth expected"),
    }
    let paths = warning_paths(&c);
    assert!(
        paths.contains(&"include[0] (plugins/anthropic.json) endpoint".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"include[0] (plugins/custom.json) rate_limit".to_owned()),
        "{paths:?}"
    );
}

#[test]
fn a_bearer_plugin_imports_as_bearer_auth() {
    let (_, yaml, _) = import_to_yaml(
        r#"{"id": "openai", "endpoint": "https://api.openai.com/v1/chat/completions",
            "auth": {"header": "Authorization", "prefix": "Bearer ", "key_env": "OPENAI_API_KEY"},
            "model_map": ["gpt-4o"]}"#,
    )
    .unwrap();
    let c = parse(&yaml, &env).unwrap();
    assert!(matches!(c.upstreams[0].auth, Auth::Bearer(_)));
    assert_eq!(c.upstreams[0].base_url, "https://api.openai.com/v1");
}

#[test]
fn a_litellm_deployment_without_api_key_reads_the_provider_variable_as_litellm_does() {
    let (_, yaml, _) = import_to_yaml(
        "model_list:\n  - {model_name: a, litellm_params: {model: groq/llama}}\n  - {model_name: b, litellm_params: {model: openai/m, api_base: 'http://vllm:8000/v1'}}\n",
    )
    .unwrap();
    assert!(yaml.contains("${GROQ_API_KEY}"), "{yaml}");
    let c = parse(&yaml, &env).unwrap();
    assert!(matches!(c.upstreams[0].auth, Auth::Bearer(_)));
    assert!(matches!(c.upstreams[1].auth, Auth::None));
}

#[test]
fn environment_references_in_base_urls_are_expanded() {
    let (_, yaml, _) = import_to_yaml(
        "model_list:\n  - {model_name: a, litellm_params: {model: ollama/llama3, api_base: os.environ/OLLAMA_URL}}\n",
    )
    .unwrap();
    let url_env = |name: &str| (name == "OLLAMA_URL").then(|| "http://ollama:11434".to_owned());
    let c = parse(&yaml, &url_env).unwrap();
    assert_eq!(c.upstreams[0].base_url, "http://ollama:11434/v1");
    let (_, yaml, _) = import_to_yaml(
        "endpoints:\n  custom:\n    - {name: x, baseURL: '${BASE_KEY}', apiKey: k}\n",
    )
    .unwrap();
    assert!(yaml.contains("${BASE_KEY}"), "{yaml}");
}

#[test]
fn two_different_literal_keys_are_printed_as_two_variables() {
    let file = r#"
model_list:
  - model_name: a
    litellm_params: {model: openai/gpt-a, api_base: 'http://one/v1', api_key: sk-literal-one-1111}
  - model_name: b
    litellm_params: {model: openai/gpt-b, api_base: 'http://two/v1', api_key: sk-literal-two-2222}
  - model_name: c
    litellm_params: {model: openai/gpt-c, api_base: 'http://one/v1', api_key: sk-literal-one-1111}
"#;
    let (_, yaml, warnings) = import_to_yaml(file).unwrap();
    assert!(!yaml.contains("sk-literal"), "{yaml}");
    assert!(yaml.contains("${OPENAI_API_KEY}"), "{yaml}");
    assert!(yaml.contains("${OPENAI_API_KEY_2}"), "{yaml}");
    assert!(
        !yaml.contains("${OPENAI_API_KEY_3}"),
        "the same key keeps its name: {yaml}"
    );
    let named: Vec<&str> = warnings
        .iter()
        .filter(|w| w.message.contains("a literal key is not printed"))
        .map(|w| w.message.as_str())
        .collect();
    assert!(
        named.iter().any(|m| m.contains("`${OPENAI_API_KEY_2}`")),
        "{named:?}"
    );
}
