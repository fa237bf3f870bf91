use super::*;
use crate::caller::Caller;
use crate::plugins::Rejection;
use bytes::Bytes;
use http::HeaderMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// A scriptable plugin that records its calls.
struct Probe {
    name: &'static str,
    log: Arc<Mutex<Vec<&'static str>>>,
    behaviour: Behaviour,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Pass,
    Reject,
    PatchField(&'static str),
    Fail,
    Panic,
    /// Waits until released (parallel tests), counting concurrency.
    Wait,
}

impl Plugin for Probe {
    fn needs_request_body(&self) -> bool {
        true
    }

    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        self.log.lock().unwrap().push(self.name);
        let seen_marker = ex.body.and_then(|b| b.get("marker")).is_some();
        Box::pin(async move {
            match self.behaviour {
                Behaviour::Pass => Ok(Verdict::pass()),
                Behaviour::Reject => Ok(Verdict::Reject(Rejection::new(
                    StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    "nope",
                    format!("{} says no", self.name),
                ))),
                Behaviour::PatchField(field) => Ok(Verdict::patch(move |v| {
                    v[field] = Value::Bool(true);
                })),
                Behaviour::Fail => Err(super::super::PluginError::Unreachable("broken".into())),
                Behaviour::Panic => panic!("plugin bug"),
                Behaviour::Wait => {
                    let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    self.in_flight.fetch_sub(1, Ordering::SeqCst);
                    let _ = seen_marker;
                    Ok(Verdict::pass())
                }
            }
        })
    }
}

struct Harness {
    log: Arc<Mutex<Vec<&'static str>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    instances: Vec<Instance>,
}

impl Harness {
    fn new() -> Self {
        Self {
            log: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            instances: Vec::new(),
        }
    }

    fn add(
        &mut self,
        name: &'static str,
        priority: i32,
        parallel: bool,
        b: Behaviour,
        on_error: OnError,
    ) -> &mut Self {
        self.instances.push(Instance {
            id: Arc::from(name),
            name: name.to_owned(),
            enabled: true,
            parallel,
            priority,
            stages: vec![Stage::PreRequest],
            on_error,
            timeout: Duration::from_secs(5),
            counters: Arc::new(Counters::new(name)),
            selector: Selector::default(),
            settings: Value::Null,
            plugin: Arc::new(Probe {
                name,
                log: self.log.clone(),
                behaviour: b,
                in_flight: self.in_flight.clone(),
                max_in_flight: self.max_in_flight.clone(),
            }),
        });
        self
    }

    fn chain(&mut self) -> Chain {
        Chain::assemble(std::mem::take(&mut self.instances))
    }
}

fn meta() -> RequestMeta {
    RequestMeta {
        request_id: HeaderValue::from_static("r1"),
        endpoint: crate::endpoint::Endpoint::Chat,
        model: "m".into(),
        stream: false,
        caller: Caller {
            key: None,
            token_hash: None,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        },
        headers: HeaderMap::new(),
    }
}

async fn run(chain: &Chain, body: &mut BodyCell) -> Result<StageEffects, GatewayError> {
    chain
        .run(Stage::PreRequest, Some(&meta()), StageInput::Request, body)
        .await
}

fn body() -> BodyCell {
    BodyCell::new(Bytes::from_static(br#"{"model":"m"}"#))
}

#[tokio::test]
async fn groups_run_by_priority_and_sequential_in_config_order() {
    let mut h = Harness::new();
    h.add("late", 5, false, Behaviour::Pass, OnError::FailOpen)
        .add("first", 1, false, Behaviour::Pass, OnError::FailOpen)
        .add("second", 1, false, Behaviour::Pass, OnError::FailOpen);
    let chain = h.chain();
    run(&chain, &mut body()).await.unwrap();
    assert_eq!(*h.log.lock().unwrap(), vec!["first", "second", "late"]);
}

#[tokio::test]
async fn a_rejection_stops_the_chain_with_its_status() {
    let mut h = Harness::new();
    h.add("guard", 1, false, Behaviour::Reject, OnError::FailOpen)
        .add("after", 2, false, Behaviour::Pass, OnError::FailOpen);
    let chain = h.chain();
    let err = run(&chain, &mut body()).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    assert_eq!(*h.log.lock().unwrap(), vec!["guard"]);
    assert_eq!(
        chain.instances()[0]
            .counters
            .rejections
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn sequential_patches_apply_and_later_plugins_see_them() {
    let mut h = Harness::new();
    h.add(
        "a",
        1,
        false,
        Behaviour::PatchField("marker"),
        OnError::FailOpen,
    );
    let chain = h.chain();
    let mut b = body();
    run(&chain, &mut b).await.unwrap();
    assert!(b.dirty);
    assert_eq!(&b.to_bytes()[..], br#"{"marker":true,"model":"m"}"#);
}

#[tokio::test]
async fn parallel_members_run_at_the_same_time() {
    let mut h = Harness::new();
    h.add("x", 1, true, Behaviour::Wait, OnError::FailOpen).add(
        "y",
        1,
        true,
        Behaviour::Wait,
        OnError::FailOpen,
    );
    let chain = h.chain();
    run(&chain, &mut body()).await.unwrap();
    assert_eq!(h.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_parallel_rejection_cancels_the_other_members() {
    let mut h = Harness::new();
    h.add("slow", 1, true, Behaviour::Wait, OnError::FailOpen)
        .add("no", 1, true, Behaviour::Reject, OnError::FailOpen);
    let chain = h.chain();
    let err = run(&chain, &mut body()).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    // The slow member started and was dropped before finishing.
    assert_eq!(h.in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn parallel_patches_are_dropped_and_counted() {
    let mut h = Harness::new();
    h.add(
        "sneaky",
        1,
        true,
        Behaviour::PatchField("marker"),
        OnError::FailOpen,
    );
    let chain = h.chain();
    let mut b = body();
    run(&chain, &mut b).await.unwrap();
    assert!(!b.dirty);
    assert_eq!(
        chain.instances()[0].counters.errors.load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn fail_open_goes_on_and_fail_closed_answers_500() {
    for (b, policy, ok) in [
        (Behaviour::Fail, OnError::FailOpen, true),
        (Behaviour::Panic, OnError::FailOpen, true),
        (Behaviour::Fail, OnError::FailClosed, false),
        (Behaviour::Panic, OnError::FailClosed, false),
    ] {
        let mut h = Harness::new();
        h.add("flaky", 1, false, b, policy).add(
            "next",
            2,
            false,
            Behaviour::Pass,
            OnError::FailOpen,
        );
        let chain = h.chain();
        let result = run(&chain, &mut body()).await;
        assert_eq!(result.is_ok(), ok);
        if let Err(e) = result {
            assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(e.code(), "plugin_error");
        }
        assert_eq!(
            chain.instances()[0].counters.errors.load(Ordering::Relaxed),
            1
        );
    }
}

#[test]
fn build_reports_unknown_names_bad_stages_and_parallel_modifiers() {
    let config = switchyard_config::parse(
        r#"
upstreams: [{name: m, dialect: mock}]
plugins:
  - {name: no_such_plugin}
  - {name: rate_limiter, stage: on_chunk, config: {limit: 1, window: 1m}}
  - {name: system_prompt, parallel: true, config: {content: hi}}
  - {name: content_filter, config: {banned_patterns: ["(unclosed"]}}
  - {name: rate_limiter, config: {limit: 1, window: soon}}
  - {name: params, config: {defaults: {}, typo: 1}}
"#,
        &|_| None,
    )
    .unwrap();
    let errors = Chain::build(&config.plugins, &Clients::default(), None).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "plugins[0].name",
            "plugins[1].stage",
            "plugins[2].parallel",
            "plugins[3].config.banned_patterns[0]",
            "plugins[4].config.window",
            "plugins[5].config.typo"
        ],
        "{errors:?}"
    );
}

#[test]
fn an_empty_chain_is_empty() {
    let chain = Chain::build(&[], &Clients::default(), None).unwrap();
    assert!(chain.is_empty());
}
