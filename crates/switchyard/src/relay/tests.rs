use super::*;
use http_body_util::BodyExt;
use std::sync::Mutex;

fn chunk(content: &str) -> String {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}}}}],\"usage\":null}}\n\n"
    )
}

const USAGE_CHUNK: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

const NINE_AND_FOUR: Usage = Usage {
    prompt_tokens: 9,
    completion_tokens: Some(4),
};

/// Relays `frames` (SSE or not) to the end; what the client got, and the stats.
async fn run(frames: Vec<Bytes>, sse: bool, read: Option<bool>) -> (Bytes, BodyStats) {
    let mut relay = Relay::new(
        Source::Frames(frames.into()),
        sse,
        Duration::from_secs(5),
        Arc::from("up"),
        None,
    );
    if let Some(strip) = read {
        relay.read_usage(strip);
    }
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    relay.observe(Box::new(move |stats| *sink.lock().unwrap() = Some(stats)));
    let body = ResponseBody::Relay(Box::new(relay));
    let bytes = body.collect().await.unwrap().to_bytes();
    let stats = seen.lock().unwrap().take().unwrap();
    (bytes, stats)
}

fn stream_with_usage() -> Vec<Bytes> {
    vec![
        Bytes::from(chunk("a")),
        Bytes::from(chunk("b")),
        Bytes::from(format!("{}{USAGE_CHUNK}{DONE}", chunk(""))),
    ]
}

#[tokio::test]
async fn the_usage_chunk_the_gateway_asked_for_is_read_and_left_out() {
    let (bytes, stats) = run(stream_with_usage(), true, Some(true)).await;
    let want = format!("{}{}{}{DONE}", chunk("a"), chunk("b"), chunk(""));
    assert_eq!(bytes, want.as_bytes());
    assert_eq!(stats.usage, Some(NINE_AND_FOUR));
    assert_eq!(stats.bytes, want.len() as u64);
}

#[tokio::test]
async fn a_usage_chunk_the_client_asked_for_is_read_and_kept() {
    let frames = stream_with_usage();
    let whole: Vec<u8> = frames.concat();
    let (bytes, stats) = run(frames, true, Some(false)).await;
    assert_eq!(bytes, whole);
    assert_eq!(stats.usage, Some(NINE_AND_FOUR));
}

#[tokio::test]
async fn a_usage_chunk_cut_across_frames_is_still_read_and_left_out() {
    let whole = format!("{}{USAGE_CHUNK}{DONE}", chunk("a"));
    let frames: Vec<Bytes> = whole
        .as_bytes()
        .chunks(7)
        .map(Bytes::copy_from_slice)
        .collect();
    let (bytes, stats) = run(frames, true, Some(true)).await;
    assert_eq!(bytes, format!("{}{DONE}", chunk("a")).as_bytes());
    assert_eq!(stats.usage, Some(NINE_AND_FOUR));
}

#[tokio::test]
async fn usage_is_not_read_unless_asked() {
    let frames = stream_with_usage();
    let whole: Vec<u8> = frames.concat();
    let (bytes, stats) = run(frames, true, None).await;
    assert_eq!(bytes, whole);
    assert_eq!(stats.usage, None);
}

#[tokio::test]
async fn a_json_body_gives_its_usage_from_its_last_frames() {
    let filler = "x".repeat(3 * TAIL_BYTES);
    let body = format!(
        r#"{{"id":"x","choices":[{{"message":{{"content":"{filler}"}}}}],"usage":{{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}},"system_fingerprint":null}}"#
    );
    // Small frames: the usage object spans several of them.
    let frames: Vec<Bytes> = body
        .as_bytes()
        .chunks(25)
        .map(Bytes::copy_from_slice)
        .collect();
    let (bytes, stats) = run(frames, false, Some(false)).await;
    assert_eq!(bytes, body.as_bytes());
    assert_eq!(stats.usage, Some(NINE_AND_FOUR));
    let (_, one_frame) = run(vec![Bytes::from(body)], false, Some(false)).await;
    assert_eq!(one_frame.usage, Some(NINE_AND_FOUR));
}

#[tokio::test]
async fn the_tail_kept_for_a_json_body_stays_bounded() {
    let mut watch = UsageWatch::default();
    for _ in 0..1000 {
        watch.keep(&Bytes::from_static(&[b'x'; 100]));
    }
    assert!(watch.held >= TAIL_BYTES && watch.held < TAIL_BYTES + 100);
    assert_eq!(watch.held, watch.tail.iter().map(Bytes::len).sum::<usize>());
}

/// Records what the hooks saw.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<u8>,
    finished: Vec<Option<Usage>>,
}

#[derive(Debug)]
struct Recording(Arc<Mutex<Seen>>);

impl StreamHooks for Recording {
    fn on_events(&mut self, aligned: &Bytes) -> Result<Bytes, Box<(Bytes, Rejection)>> {
        self.0.lock().unwrap().events.extend_from_slice(aligned);
        Ok(aligned.clone())
    }
    fn on_upstream_end(&mut self) -> Result<Bytes, Box<(Bytes, Rejection)>> {
        Ok(Bytes::new())
    }
    fn finish(&mut self, usage: Option<Usage>) {
        self.0.lock().unwrap().finished.push(usage);
    }
}

#[tokio::test]
async fn hooks_never_see_the_left_out_chunk_and_get_the_usage_when_the_stream_ends() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut relay = Relay::events(stream_with_usage(), Arc::from("up"));
    relay.read_usage(true);
    relay.set_hooks(Box::new(Recording(seen.clone())));
    let bytes = ResponseBody::Relay(Box::new(relay))
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.events, bytes);
    assert!(!String::from_utf8_lossy(&bytes).contains("\"choices\":[]"));
    assert_eq!(seen.finished.first(), Some(&Some(NINE_AND_FOUR)));
}
