use crate::{parse, Config, ConfigError, ConfigErrors, ExportFormat};
use std::path::Path;
use std::time::Duration;

fn env(name: &str) -> Option<String> {
    (name == "ES_TOKEN").then(|| "s3cret-token".to_owned())
}

/// `yaml` after one mock upstream (a config needs one).
fn config_with(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    parse(
        &format!("upstreams: [{{name: m, dialect: mock}}]\n{yaml}"),
        env,
    )
}

fn config(yaml: &str) -> Result<Config, ConfigErrors> {
    config_with(yaml, &env)
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    config(yaml).unwrap_err().0
}

fn paths(yaml: &str) -> Vec<String> {
    errors(yaml).into_iter().map(|e| e.path).collect()
}

const FULL: &str = r#"
export:
  queue: 100
  batch_size: 10
  flush_interval: 250ms
  max_attempts: 3
  backoff: 1s
  file: { path: /var/log/switchyard/requests.jsonl, max_bytes: 1048576, keep: 2 }
  http:
    - { url: "http://es:9200/_bulk", format: elasticsearch, index: switchyard-requests, headers: {authorization: "Bearer ${ES_TOKEN}"}, timeout: 5s }
    - { url: "http://ch:8123/?query=INSERT%20INTO%20requests%20FORMAT%20JSONEachRow", format: clickhouse }
"#;

#[test]
fn export_is_off_without_the_section() {
    assert!(config("").unwrap().export.is_none());
    assert!(config("export:").unwrap().export.is_none());
}

#[test]
fn a_full_export_section_resolves_every_field() {
    let export = config(FULL).unwrap().export.unwrap();
    assert_eq!(export.queue, 100);
    assert_eq!(export.batch_size, 10);
    assert_eq!(export.flush_interval, Duration::from_millis(250));
    assert_eq!(export.max_attempts, 3);
    assert_eq!(export.backoff, Duration::from_secs(1));
    let file = export.file.unwrap();
    assert_eq!(file.path, Path::new("/var/log/switchyard/requests.jsonl"));
    assert_eq!((file.max_bytes, file.keep), (1_048_576, 2));
    let [es, ch] = &export.http[..] else {
        panic!("two collectors expected");
    };
    assert_eq!(es.name, "elasticsearch");
    assert_eq!(
        es.format,
        ExportFormat::Elasticsearch {
            index: Some("switchyard-requests".to_owned())
        }
    );
    assert_eq!(es.timeout, Duration::from_secs(5));
    assert_eq!(es.headers[0].0, "authorization");
    assert_eq!(es.headers[0].1.expose(), "Bearer s3cret-token");
    assert_eq!(ch.name, "clickhouse");
    assert_eq!(ch.format, ExportFormat::ClickHouse);
    assert!(ch
        .url
        .ends_with("?query=INSERT%20INTO%20requests%20FORMAT%20JSONEachRow"));
    assert_eq!(ch.timeout, Duration::from_secs(10));
}

#[test]
fn export_defaults_fill_what_is_not_written() {
    let export = config("export: {file: {path: r.jsonl}}")
        .unwrap()
        .export
        .unwrap();
    assert_eq!(export.queue, 10_000);
    assert_eq!(export.batch_size, 500);
    assert_eq!(export.flush_interval, Duration::from_secs(2));
    assert_eq!(export.max_attempts, 5);
    assert_eq!(export.backoff, Duration::from_millis(500));
    let file = export.file.unwrap();
    assert_eq!((file.max_bytes, file.keep), (100 * 1024 * 1024, 5));
    assert!(export.http.is_empty());
}

#[test]
fn export_header_secrets_never_print() {
    let config = config(FULL).unwrap();
    assert!(!format!("{config:?}").contains("s3cret-token"));
}

#[test]
fn an_export_header_with_an_unset_variable_is_reported_at_its_path() {
    let e = config_with(FULL, &|_| None).unwrap_err().0;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "export.http[0].headers.authorization");
    assert!(e[0].message.contains("ES_TOKEN"));
}

#[test]
fn an_export_section_with_no_sink_is_an_error() {
    let e = errors("export: {queue: 10}");
    assert_eq!(e[0].path, "export");
    assert!(e[0].message.contains("no sink"));
}

#[test]
fn a_bad_format_is_reported_at_its_path() {
    let e = errors("export: {http: [{url: 'http://x/', format: splunk}]}");
    assert_eq!(e[0].path, "export.http[0].format");
    assert!(e[0].message.contains("unknown format `splunk`"));
    assert_eq!(
        paths("export: {http: [{url: 'http://x/'}]}"),
        ["export.http[0].format"]
    );
}

#[test]
fn every_broken_export_field_is_reported_with_its_path() {
    let yaml = r#"
export:
  queue: 0
  batch_size: 0
  flush_interval: 0s
  max_attempts: 0
  backoff: soon
  file: {path: '', max_bytes: 0}
  http:
    - {url: 'ftp://x/', format: clickhouse, index: nope}
    - {url: 'http://x/_bulk', format: elasticsearch, timeout: -1, headers: {'bad header': v, content-type: text/plain}}
    - {url: 'http://x/_bulk', format: elasticsearch, colour: red}
"#;
    assert_eq!(
        paths(yaml),
        [
            "export.queue",
            "export.batch_size",
            "export.max_attempts",
            "export.flush_interval",
            "export.backoff",
            "export.file.path",
            "export.file.max_bytes",
            "export.http[0].url",
            "export.http[0].index",
            "export.http[1].headers.bad header",
            "export.http[1].headers.content-type",
            "export.http[1].timeout",
            "export.http[2].colour",
        ]
    );
}

#[test]
fn two_collectors_of_one_format_need_names() {
    let twice = "export: {http: [{url: 'http://a/', format: clickhouse}, {url: 'http://b/', format: clickhouse}]}";
    let e = errors(twice);
    assert_eq!(e[0].path, "export.http[1].name");
    assert!(e[0].message.contains("`clickhouse` is used twice"));
    let named = "export: {http: [{url: 'http://a/', format: clickhouse}, {name: ch2, url: 'http://b/', format: clickhouse}]}";
    let export = config(named).unwrap().export.unwrap();
    assert_eq!(export.http[1].name, "ch2");
}

#[test]
fn a_collector_cannot_take_the_file_sinks_name() {
    let yaml = "export: {file: {path: r.jsonl}, http: [{name: file, url: 'http://a/', format: clickhouse}]}";
    assert_eq!(paths(yaml), ["export.http[0].name"]);
}

#[test]
fn an_elasticsearch_collector_may_leave_the_index_to_its_url() {
    let yaml = "export: {http: [{url: 'http://es:9200/requests/_bulk', format: elasticsearch}]}";
    let export = config(yaml).unwrap().export.unwrap();
    assert_eq!(
        export.http[0].format,
        ExportFormat::Elasticsearch { index: None }
    );
}
