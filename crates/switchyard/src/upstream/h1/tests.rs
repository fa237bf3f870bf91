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
    assert_eq!(framing(head.status, &head.headers), Framing::Length(2));
    let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-"[..]);
    assert!(parse_head(&mut partial).unwrap().is_none());
}

#[test]
fn targets_come_from_urls() {
    let t = Target::from_uri(
        &"https://api.openai.com/v1/chat/completions?key=a"
            .parse()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(t.key.port, 443);
    assert!(t.key.tls);
    assert_eq!(t.path, "/v1/chat/completions?key=a");
    assert_eq!(t.host_header, "api.openai.com");
    let t = Target::from_uri(&"http://127.0.0.1:8000/v1/models".parse().unwrap()).unwrap();
    assert_eq!((t.key.port, t.key.tls), (8000, false));
    assert_eq!(t.host_header, "127.0.0.1:8000");
}

#[test]
fn request_heads_carry_host_length_and_headers() {
    let t = Target::from_uri(&"http://up:9/v1/x".parse().unwrap()).unwrap();
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Bearer k"));
    let head = encode_head(&t, h.iter(), Some(&Bytes::from_static(b"{}")));
    assert_eq!(
        String::from_utf8(head).unwrap(),
        "POST /v1/x HTTP/1.1\r\nhost: up:9\r\ncontent-length: 2\r\nauthorization: Bearer k\r\n\r\n{}"
    );
}
