//! A plain HTTP client for tests: JSON requests, raw responses, and streams read frame
//! by frame so tests can see when each chunk arrives.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Answer {
    /// Body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an OpenAI-shaped error with this status and code; returns the message.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        let v = self.json();
        let err = &v["error"];
        assert!(err["message"].is_string(), "{v}");
        assert!(err["type"].is_string(), "{v}");
        assert!(
            err.get("param").is_some() && err.get("code").is_some(),
            "{v}"
        );
        assert_eq!(err["code"], code, "{v}");
        assert!(self.headers.contains_key("x-request-id"));
        err["message"].as_str().unwrap().to_owned()
    }
}

/// Test client.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    /// A client for `http://addr`.
    pub fn new(base: String) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(conn),
            base,
        }
    }

    /// Sends a request and returns the response head with its body unread.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> http::Response<Incoming> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).unwrap();
        self.client.request(req).await.unwrap()
    }

    /// Sends and reads the whole body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let resp = self.send(method, path, headers, body).await;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, &[], Bytes::new()).await
    }
}

/// A chat request body.
pub fn chat(model: &str, text: &str, stream: bool) -> Value {
    serde_json::json!({"model": model, "stream": stream,
                       "messages": [{"role": "user", "content": text}]})
}

/// Reads the next data frame of a body (None at the end).
pub async fn next_data(body: &mut Incoming) -> Option<Result<Bytes, String>> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(e.to_string())),
        }
    }
}

/// Reads a body to the end; `Err` if the connection broke.
pub async fn read_all(body: &mut Incoming) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(frame) = next_data(body).await {
        out.extend_from_slice(&frame?);
    }
    Ok(out)
}
