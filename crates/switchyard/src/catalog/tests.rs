use super::*;

fn catalog(yaml: &str) -> Catalog {
    let config = switchyard_config::parse(yaml, &|_| None).unwrap();
    Catalog::new(&config)
}

fn ids(c: &Catalog) -> Vec<(String, String)> {
    c.index()
        .listing
        .iter()
        .map(|m| (m.id.clone(), m.owned_by.clone()))
        .collect()
}

#[test]
fn merges_static_lists_and_lists_shared_ids_per_upstream() {
    let c = catalog(
        "upstreams:\n  - {name: a, base_url: 'http://a', models: [m1, shared]}\n  - {name: b, base_url: 'http://b', models: [shared, m2]}\n",
    );
    assert_eq!(
        ids(&c),
        vec![
            ("m1".into(), "a".into()),
            ("shared".into(), "a,b".into()),
            ("a/shared".into(), "a".into()),
            ("b/shared".into(), "b".into()),
            ("m2".into(), "b".into()),
        ]
    );
    assert_eq!(c.index().models["shared"].upstreams, vec![0, 1]);
}

#[test]
fn hides_non_chat_kinds_from_listing_but_keeps_them_routable() {
    let c = catalog(
        "upstreams:\n  - {name: a, base_url: 'http://a', models: [gpt-4o, text-embedding-3-small, tts-1, whisper-1, dall-e-3, omni-moderation-latest]}\n",
    );
    assert_eq!(ids(&c), vec![("gpt-4o".into(), "a".into())]);
    assert!(c.index().models.contains_key("text-embedding-3-small"));
}

#[test]
fn hide_list_is_configurable() {
    let c = catalog(
        "catalogue: {hide: []}\nupstreams:\n  - {name: a, base_url: 'http://a', models: [gpt-4o, text-embedding-3-small]}\n",
    );
    assert_eq!(c.index().listing.len(), 2);
}

#[test]
fn include_and_exclude_filters_apply_to_static_lists() {
    let c = catalog(
        "upstreams:\n  - {name: a, base_url: 'http://a', models: [gpt-4o, gpt-4o-preview, llama], include: ['gpt-*'], exclude: ['*-preview']}\n",
    );
    assert_eq!(ids(&c), vec![("gpt-4o".into(), "a".into())]);
}

#[test]
fn routes_are_listed_first_and_owned_by_their_upstreams() {
    let c = catalog(
        "upstreams:\n  - {name: a, base_url: 'http://a', models: [x]}\n  - {name: b, base_url: 'http://b', models: [y]}\nroutes:\n  - {model: fast, targets: [{upstream: a, model: x}, {upstream: b, model: y}]}\n",
    );
    assert_eq!(ids(&c)[0], ("fast".into(), "a,b".into()));
}

#[test]
fn parses_openai_lists_and_bare_arrays() {
    assert_eq!(
        parse_model_ids(br#"{"object":"list","data":[{"id":"a"},{"id":"b"}]}"#).unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(parse_model_ids(br#"[{"id":"c"}]"#).unwrap(), vec!["c"]);
    assert!(parse_model_ids(b"<html>").is_err());
}

#[test]
fn rfc3339_utc_times_become_unix_seconds() {
    assert_eq!(super::utc_seconds("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        super::utc_seconds("2025-08-05T00:00:00Z"),
        Some(1_754_352_000)
    );
    assert_eq!(
        super::utc_seconds("2024-02-29T12:34:56.789Z"),
        Some(1_709_210_096)
    );
    assert_eq!(super::utc_seconds("2024-02-29T12:34:56-07:00"), None);
    assert_eq!(super::utc_seconds("yesterday"), None);
}
