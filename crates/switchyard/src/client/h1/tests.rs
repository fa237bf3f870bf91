//! Tests of the HTTP/1.1 client: body decoding, head parsing, the idle pool's
//! bookkeeping, and (against a local server) when a request may be sent again.

use super::idle::{IdleList, IDLE_FOR, MAX_IDLE_PER_HOST};
use super::wire::{Chunk, MAX_LINE, MAX_TRAILERS};
use super::*;

fn decode_all(input: &[u8], split_every: usize) -> (Vec<u8>, bool, usize) {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pieces = 0;
    let mut done = false;
    for part in input.chunks(split_every) {
        buf.extend_from_slice(part);
        let (data, d) = decode(&mut buf, &mut framing).unwrap();
        if !data.is_empty() {
            pieces += 1;
        }
        out.extend_from_slice(&data);
        done = d;
    }
    (out, done, pieces)
}

const CHUNKED: &[u8] = b"6\r\ndata: \r\n3\r\nabc\r\nb;ext=1\r\n\n\ndata: [DO\r\n4\r\nNE]\n\r\n0\r\nx-trailer: 1\r\n\r\n";

#[test]
fn chunked_bodies_decode_whatever_the_read_sizes() {
    for split in [1, 2, 3, 7, 1000] {
        let (out, done, _) = decode_all(CHUNKED, split);
        assert_eq!(out, b"data: abc\n\ndata: [DONE]\n", "split {split}");
        assert!(done, "split {split}");
    }
}

#[test]
fn all_chunks_in_one_read_come_out_as_one_piece() {
    let (_, _, pieces) = decode_all(CHUNKED, CHUNKED.len());
    assert_eq!(pieces, 1);
}

#[test]
fn bad_chunk_sizes_are_errors() {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&b"zz\r\n"[..]);
    assert!(decode(&mut buf, &mut framing).is_err());
}

#[test]
fn content_length_bodies_end_exactly() {
    let mut framing = Framing::Length(5);
    let mut buf = BytesMut::from(&b"hel"[..]);
    let (d, done) = decode(&mut buf, &mut framing).unwrap();
    assert_eq!((&d[..], done), (&b"hel"[..], false));
    buf.extend_from_slice(b"lo");
    let (d, done) = decode(&mut buf, &mut framing).unwrap();
    assert_eq!((&d[..], done), (&b"lo"[..], true));
}

#[test]
fn heads_parse_with_their_headers_and_leave_the_body() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\ncontent-length: 2\r\n\r\n{}"[..],
    );
    let head = parse_head(&mut buf).unwrap().unwrap();
    assert_eq!(head.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(head.headers["retry-after"], "3");
    assert_eq!(&buf[..], b"{}");
    assert_eq!(
        framing(head.status, &head.headers).unwrap(),
        Framing::Length(2)
    );
    let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-"[..]);
    assert!(parse_head(&mut partial).unwrap().is_none());
}

#[test]
fn targets_come_from_urls() {
    let t = Destination::from_uri(
        &"https://api.openai.com/v1/chat/completions?key=a"
            .parse()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(t.key.port, 443);
    assert!(t.key.tls);
    assert_eq!(t.path, "/v1/chat/completions?key=a");
    assert_eq!(t.host_header, "api.openai.com");
    let t = Destination::from_uri(&"http://127.0.0.1:8000/v1/models".parse().unwrap()).unwrap();
    assert_eq!((t.key.port, t.key.tls), (8000, false));
    assert_eq!(t.host_header, "127.0.0.1:8000");
}

#[test]
fn request_heads_carry_host_length_and_headers() {
    let t = Destination::from_uri(&"http://up:9/v1/x".parse().unwrap()).unwrap();
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Bearer k"));
    let head = encode_head(&t, "POST", h.iter(), Some(&Bytes::from_static(b"{}")));
    assert_eq!(
        String::from_utf8(head).unwrap(),
        "POST /v1/x HTTP/1.1\r\nhost: up:9\r\ncontent-length: 2\r\nauthorization: Bearer k\r\n\r\n{}"
    );
}

#[test]
fn a_chunk_size_line_longer_than_4_kib_is_an_error() {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&vec![b'0'; MAX_LINE + 2][..]);
    let e = decode(&mut buf, &mut framing).unwrap_err();
    assert_eq!(e.to_string(), "chunk size line too long");
    // Fed a little at a time, it fails as soon as the line is known to be too long.
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut failed = false;
    for _ in 0..100 {
        buf.extend_from_slice(&[b'1'; 100]);
        if decode(&mut buf, &mut framing).is_err() {
            failed = true;
            break;
        }
        assert!(buf.len() <= MAX_LINE + 1);
    }
    assert!(failed);
}

#[test]
fn a_chunk_size_line_of_4_kib_is_still_read() {
    let mut input = b"5".to_vec();
    input.resize(MAX_LINE, b' ');
    input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let (out, done, _) = decode_all(&input, input.len());
    assert_eq!((&out[..], done), (&b"hello"[..], true));
}

#[test]
fn a_trailer_line_longer_than_4_kib_is_an_error() {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&b"0\r\nx-t: "[..]);
    buf.extend_from_slice(&vec![b'a'; MAX_LINE]);
    assert!(decode(&mut buf, &mut framing).is_err());
}

#[test]
fn endless_trailers_are_an_error() {
    let mut input = b"0\r\n".to_vec();
    for _ in 0..MAX_TRAILERS {
        input.extend_from_slice(b"x-t: 1\r\n");
    }
    let mut ok = input.clone();
    ok.extend_from_slice(b"\r\n");
    let (_, done, _) = decode_all(&ok, 7);
    assert!(done, "{MAX_TRAILERS} trailers are fine");
    input.extend_from_slice(b"x-t: 1\r\n\r\n");
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&input[..]);
    assert!(decode(&mut buf, &mut framing).is_err());
    // And their total size is capped too.
    let mut input = b"0\r\n".to_vec();
    for _ in 0..8 {
        input.extend_from_slice(b"x-t: ");
        input.extend_from_slice(&vec![b'a'; MAX_LINE - 10]);
        input.extend_from_slice(b"\r\n");
    }
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&input[..]);
    assert!(decode(&mut buf, &mut framing).is_err());
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn expired_idle_entries_are_swept_from_under_the_newest() {
    let t0 = Instant::now();
    let mut list = IdleList::default();
    list.checkin(1, t0 + secs(10), t0);
    list.checkin(2, t0 + secs(20), t0);
    list.checkin(3, t0 + secs(60), t0);
    assert_eq!(list.len(), 3);
    // A checkin 25 s later drops the two expired ones, though they are under a live one.
    list.checkin(4, t0 + secs(55), t0 + secs(25));
    assert_eq!(list.len(), 2);
    // A checkout sweeps too, then takes the newest.
    list.checkin(5, t0 + secs(90), t0 + secs(30));
    assert_eq!(list.checkout(t0 + secs(58), |_| true), Some(5));
    assert_eq!(list.len(), 2);
    // 4 expired first (a shorter keep-alive) but sits behind 3: passed over, dropped.
    assert_eq!(list.checkout(t0 + secs(58), |_| true), Some(3));
    assert_eq!(list.len(), 0);
    assert_eq!(list.checkout(t0 + secs(58), |_| true), None);
}

#[test]
fn checkout_passes_over_expired_and_dead_entries_probing_only_what_it_takes() {
    let t0 = Instant::now();
    let mut list = IdleList::default();
    list.checkin(1, t0 + secs(60), t0);
    list.checkin(2, t0 + secs(60), t0);
    list.checkin(3, t0 + secs(5), t0); // a shorter keep-alive, behind a live entry
    list.checkin(4, t0 + secs(60), t0);
    let mut probed = Vec::new();
    let got = list.checkout(t0 + secs(10), |c| {
        probed.push(*c);
        *c != 4 // 4 was closed by the server
    });
    assert_eq!(got, Some(2));
    assert_eq!(probed, vec![4, 2]);
    assert_eq!(list.len(), 1);
}

#[test]
fn reaping_takes_every_expired_or_dead_entry_wherever_it_sits() {
    let t0 = Instant::now();
    let mut list = IdleList::default();
    list.checkin(1, t0 + secs(60), t0);
    list.checkin(2, t0 + secs(5), t0); // a shorter keep-alive, between live entries
    list.checkin(3, t0 + secs(60), t0);
    list.checkin(4, t0 + secs(60), t0);
    let mut out = Vec::new();
    list.reap(t0 + secs(10), &mut out, |c| *c != 3); // 3 was closed by the server
    assert_eq!(out, vec![2, 3]);
    assert_eq!(list.len(), 2);
    // What is left keeps its order: the newest is taken first.
    assert_eq!(list.checkout(t0 + secs(10), |_| true), Some(4));
    list.reap(t0 + secs(60), &mut out, |_| true);
    assert!(list.is_empty());
    assert_eq!(out, vec![2, 3, 1]);
}

#[test]
fn a_destinations_idle_limit_caps_the_keep_alive() {
    assert_eq!(idle_for(&HeaderMap::new(), secs(2)), secs(2));
    assert_eq!(idle_for(&with_keep_alive("timeout=60"), secs(2)), secs(2));
    assert_eq!(idle_for(&with_keep_alive("timeout=2"), secs(10)), secs(1));
}

#[test]
fn a_full_idle_list_lets_its_oldest_entry_go() {
    let t0 = Instant::now();
    let mut list = IdleList::default();
    for i in 0..=MAX_IDLE_PER_HOST {
        list.checkin(i, t0 + secs(60), t0);
    }
    assert_eq!(list.len(), MAX_IDLE_PER_HOST);
    assert_eq!(list.entries.front().map(|e| e.0), Some(1));
    // Already expired: not kept at all.
    let mut list = IdleList::default();
    list.checkin(0, t0, t0);
    assert_eq!(list.len(), 0);
}

fn with_keep_alive(value: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("keep-alive", HeaderValue::from_static(value));
    h
}

#[test]
fn the_upstreams_keep_alive_timeout_shortens_the_idle_time() {
    assert_eq!(idle_for(&HeaderMap::new(), IDLE_FOR), IDLE_FOR);
    assert_eq!(IDLE_FOR, secs(30));
    assert_eq!(
        idle_for(&with_keep_alive("timeout=5, max=1000"), IDLE_FOR),
        secs(4)
    );
    assert_eq!(
        idle_for(&with_keep_alive("max=1000, Timeout = 10"), IDLE_FOR),
        secs(9)
    );
    assert_eq!(
        idle_for(&with_keep_alive("timeout=\"3\""), IDLE_FOR),
        secs(2)
    );
    assert_eq!(idle_for(&with_keep_alive("timeout=1"), IDLE_FOR), secs(1));
    assert_eq!(idle_for(&with_keep_alive("timeout=2"), IDLE_FOR), secs(1));
    assert_eq!(
        idle_for(&with_keep_alive("timeout=0"), IDLE_FOR),
        Duration::ZERO
    );
    assert_eq!(
        idle_for(&with_keep_alive("timeout=600"), IDLE_FOR),
        IDLE_FOR
    );
    assert_eq!(idle_for(&with_keep_alive("max=5"), IDLE_FOR), IDLE_FOR);
    assert_eq!(
        idle_for(&with_keep_alive("timeout=soon"), IDLE_FOR),
        IDLE_FOR
    );
}

/// What the test server does with the second request on a connection (the first is
/// answered `200` with keep-alive).
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Answers it too.
    Answer,
    /// Reads it, waits, closes.
    Close,
    /// Reads it, sends `100 Continue`, waits, closes.
    InterimThenClose,
}

#[derive(Default)]
struct Seen {
    connections: usize,
    requests: Vec<String>,
}

struct TestServer {
    port: u16,
    seen: Arc<std::sync::Mutex<Seen>>,
}

impl TestServer {
    async fn start(then: Then) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                record.lock().unwrap().connections += 1;
                tokio::spawn(serve(sock, then, record.clone()));
            }
        });
        Self { port, seen }
    }

    fn target(&self) -> Destination {
        Destination::from_uri(
            &format!("http://127.0.0.1:{}/v1/x", self.port)
                .parse()
                .unwrap(),
        )
        .unwrap()
    }

    fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }

    fn posts(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.requests
            .iter()
            .filter(|r| r.starts_with("POST "))
            .count()
    }
}

async fn serve(mut sock: TcpStream, then: Then, seen: Arc<std::sync::Mutex<Seen>>) {
    let mut buf = Vec::new();
    let mut n = 0;
    while let Some(request) = read_request(&mut sock, &mut buf).await {
        seen.lock()
            .unwrap()
            .requests
            .push(String::from_utf8_lossy(&request).into_owned());
        n += 1;
        let reply: &[u8] = match (n, then) {
            (1, _) | (_, Then::Answer) => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
            (_, Then::Close) => b"",
            (_, Then::InterimThenClose) => b"HTTP/1.1 100 Continue\r\n\r\n",
        };
        if sock.write_all(reply).await.is_err() {
            return;
        }
        if n > 1 && !matches!(then, Then::Answer) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return; // closes the connection
        }
    }
}

/// One request (head and `content-length` body); `None` at the end of the stream.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            let total = head_end + 4 + length;
            if buf.len() >= total {
                return Some(buf.drain(..total).collect());
            }
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn read_body(mut body: H1Body) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(piece) = std::future::poll_fn(|cx| body.poll_data(cx)).await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

const CONNECT: Duration = Duration::from_secs(2);

/// A GET answered with keep-alive: its connection goes to the pool.
async fn warm_up(client: &Arc<H1Client>, target: &Destination) {
    let resp = client
        .request(target, std::iter::empty(), None, CONNECT)
        .await
        .unwrap();
    assert_eq!(read_body(resp.body).await, b"{}");
}

#[tokio::test]
async fn a_reused_connection_closed_unanswered_is_tried_once_more_on_a_new_one() {
    // The server takes the POST on the pooled connection and closes without a byte of
    // answer, as a server closing an idle keep-alive connection does: sent once more,
    // on a new connection, which answers.
    let server = TestServer::start(Then::Close).await;
    let target = server.target();
    let client = H1Client::new().unwrap();
    warm_up(&client, &target).await;
    let before = crate::metrics::metrics().connections_retried.get();
    let post = Bytes::from_static(b"{\"n\":1}");
    let sent = client.request(&target, std::iter::empty(), Some(&post), CONNECT);
    let result = tokio::time::timeout(Duration::from_secs(5), sent)
        .await
        .unwrap();
    let resp = result.expect("answered on the new connection");
    assert_eq!(read_body(resp.body).await, b"{}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.posts(), 2);
    assert_eq!(server.connections(), 2);
    assert!(crate::metrics::metrics().connections_retried.get() > before);
}

#[tokio::test]
async fn a_post_answered_in_part_is_not_sent_again() {
    // A 100 Continue came back: the server answered, so it may have acted on it.
    let server = TestServer::start(Then::InterimThenClose).await;
    let target = server.target();
    let client = H1Client::new().unwrap();
    warm_up(&client, &target).await;
    let post = Bytes::from_static(b"{\"n\":1}");
    let sent = client.request(&target, std::iter::empty(), Some(&post), CONNECT);
    let result = tokio::time::timeout(Duration::from_secs(5), sent)
        .await
        .unwrap();
    assert!(result.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.posts(), 1, "the POST reached the server once");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn a_pooled_connection_carries_the_next_request() {
    let server = TestServer::start(Then::Answer).await;
    let target = server.target();
    let client = H1Client::new().unwrap();
    warm_up(&client, &target).await;
    let post = Bytes::from_static(b"{}");
    let resp = client
        .request(&target, std::iter::empty(), Some(&post), CONNECT)
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(read_body(resp.body).await, b"{}");
    assert_eq!(server.connections(), 1);
    assert_eq!(server.posts(), 1);
}

#[tokio::test]
async fn an_expired_pooled_connection_is_not_reused() {
    let server = TestServer::start(Then::Answer).await;
    let target = server.target();
    let client = H1Client::new().unwrap();
    warm_up(&client, &target).await;
    // Expire what this thread pooled for this target: the next request connects anew.
    super::pool::with_local(|idle| {
        if let Some(list) = idle.get_mut(&target.key) {
            for entry in &mut list.entries {
                entry.1 = Instant::now();
            }
        }
    });
    let resp = client
        .request(&target, std::iter::empty(), None, CONNECT)
        .await
        .unwrap();
    assert_eq!(read_body(resp.body).await, b"{}");
    assert_eq!(server.connections(), 2);
}

fn head_of(raw: &[u8]) -> super::wire::Head {
    let mut buf = bytes::BytesMut::from(raw);
    parse_head(&mut buf).unwrap().unwrap()
}

#[test]
fn keep_alive_follows_the_version_and_every_connection_token() {
    assert!(head_of(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive());
    assert!(!head_of(b"HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\n\r\n").keep_alive());
    assert!(
        !head_of(b"HTTP/1.1 200 OK\r\nConnection: upgrade\r\nConnection: Close\r\n\r\n")
            .keep_alive()
    );
    assert!(!head_of(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive());
    assert!(head_of(b"HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\n\r\n").keep_alive());
    assert!(!head_of(b"HTTP/1.0 200 OK\r\nconnection: keep-alive, close\r\n\r\n").keep_alive());
}

#[test]
fn bad_or_conflicting_content_lengths_are_errors() {
    let ok = head_of(b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n");
    assert_eq!(framing(ok.status, &ok.headers).unwrap(), Framing::Length(5));
    for raw in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
    ] {
        let head = head_of(raw);
        assert!(
            framing(head.status, &head.headers).is_err(),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn folded_header_lines_are_unfolded() {
    let head = head_of(
        b"HTTP/1.1 200 OK\r\nx-long: first\r\n  second\r\n\tthird\r\ncontent-length: 0\r\n\r\n",
    );
    assert_eq!(head.headers["x-long"], "first second third");
    assert_eq!(head.headers["content-length"], "0");
}

#[tokio::test]
async fn the_reaper_closes_expired_connections_nobody_checks_out() {
    let server = TestServer::start(Then::Answer).await;
    let target = server.target().keeping_idle(Duration::from_millis(300));
    let client = H1Client::new().unwrap();
    warm_up(&client, &target).await;
    let pooled = |key: &ConnKey| super::pool::with_local(|idle| idle.get(key).map(IdleList::len));
    assert_eq!(pooled(&target.key), Some(1));
    // Not yet expired: kept. (Other tests' pools are swept too; the counts are theirs.)
    super::pool::reap_now(Instant::now());
    assert_eq!(pooled(&target.key), Some(1));
    // Expired: closed by the reaper from another thread, the host's list dropped.
    let later = Instant::now() + Duration::from_millis(400);
    let reaped = std::thread::spawn(move || super::pool::reap_now(later))
        .join()
        .unwrap();
    assert!(reaped >= 1, "{reaped}");
    assert_eq!(pooled(&target.key), None);
}
