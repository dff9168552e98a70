//! The admin API over HTTP/1.1 (hyper, already in the tree through the
//! probe and docker-api): one request at a time, a bearer token, JSON in
//! and out, and errors sorted by what the operator should do about them
//! ([`CtlError`] → exit code).

use std::time::Duration;

use hyper::body::HttpBody;
use hyper::client::HttpConnector;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Body, Method, Request, Uri};
use serde_json::Value;

/// Why a command did not succeed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad arguments or settings (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The service answered with an error (exit 1). `body` is the whole
    /// answer (a recorded failure carries its operation).
    #[error("refused ({status}): {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
        body: Value,
    },
    /// The service answered something that is not its API (exit 1).
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// No answer: connection refused, name not resolved, timed out (exit 3).
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Refused { .. } | CtlError::Protocol(_) => 1,
            CtlError::Usage(_) => 2,
            CtlError::Unreachable { .. } => 3,
        }
    }
}

/// A configured client of one admin surface.
#[derive(Debug)]
pub struct Client {
    base: String,
    token: String,
    timeout: Duration,
    http: hyper::Client<HttpConnector>,
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved
/// characters), so `+` in a time zone offset stays a `+`.
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&…` of the pairs whose value is set.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

impl Client {
    /// `url` is the admin listener's base (`http://host:port`); plain
    /// HTTP only, like the listener itself.
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, CtlError> {
        let base = url.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|_| CtlError::Usage(format!("--url {url:?} is not a URL")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(CtlError::Usage(format!(
                "--url {url:?} must be http://host:port (the admin listener speaks plain HTTP)"
            )));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(CtlError::Usage(format!(
                "--url {url:?} must not have a path (the client adds /admin/v1/…)"
            )));
        }
        Ok(Self {
            base,
            token: token.to_owned(),
            timeout,
            http: hyper::Client::new(),
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Request<Body>, CtlError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        req.body(body)
            .map_err(|e| CtlError::Usage(format!("cannot build a request for {url}: {e}")))
    }

    fn unreachable(&self, reason: impl Into<String>) -> CtlError {
        CtlError::Unreachable {
            url: self.base.clone(),
            reason: reason.into(),
        }
    }

    /// Sends `req` and waits for the response head, within the timeout.
    async fn send(&self, req: Request<Body>) -> Result<hyper::Response<Body>, CtlError> {
        match tokio::time::timeout(self.timeout, self.http.request(req)).await {
            Err(_) => Err(self.unreachable(format!("no answer within {:?}", self.timeout))),
            Ok(Err(e)) => Err(self.unreachable(e.to_string())),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// One JSON exchange: `Ok(body)` on 2xx, `Refused` with the API's error
    /// otherwise.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, CtlError> {
        let resp = self
            .send(self.request(method, path, body, headers)?)
            .await?;
        let status = resp.status();
        let bytes = tokio::time::timeout(self.timeout, hyper::body::to_bytes(resp.into_body()))
            .await
            .map_err(|_| self.unreachable("the answer did not finish in time"))?
            .map_err(|e| self.unreachable(format!("the answer broke off: {e}")))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            CtlError::Protocol(format!(
                "HTTP {status} with a body that is not JSON: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let field = |k: &str| value["error"][k].as_str().map(str::to_owned);
        match (field("code"), field("message")) {
            (Some(code), Some(message)) => Err(CtlError::Refused {
                status: status.as_u16(),
                code,
                message,
                body: value,
            }),
            _ => Err(CtlError::Protocol(format!(
                "HTTP {status} without an error object"
            ))),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, CtlError> {
        self.json(Method::GET, path, None, &[]).await
    }

    /// A streamed `GET`: each chunk of a 2xx body goes to `sink` as it
    /// arrives (no timeout once the head is in: a follow lasts).
    pub async fn stream(
        &self,
        path: &str,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), CtlError> {
        let resp = self
            .send(self.request(Method::GET, path, None, &[])?)
            .await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = tokio::time::timeout(self.timeout, hyper::body::to_bytes(body))
                .await
                .map_err(|_| self.unreachable("the answer did not finish in time"))?
                .map_err(|e| self.unreachable(format!("the answer broke off: {e}")))?;
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let field = |k: &str| value["error"][k].as_str().map(str::to_owned);
            return Err(match (field("code"), field("message")) {
                (Some(code), Some(message)) => CtlError::Refused {
                    status: status.as_u16(),
                    code,
                    message,
                    body: value,
                },
                _ => CtlError::Protocol(format!("HTTP {status} without an error object")),
            });
        }
        while let Some(chunk) = body.data().await {
            let chunk =
                chunk.map_err(|e| self.unreachable(format!("the stream broke off: {e}")))?;
            // A closed stdout (`| head`) ends the follow quietly.
            if sink(&chunk).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("2030-01-01T00:00:00+01:00"),
            "2030-01-01T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(
            query(&[
                ("a", Some("x y".into())),
                ("b", None),
                ("c", Some("1".into()))
            ]),
            "?a=x%20y&c=1"
        );
        assert_eq!(query(&[("b", None)]), "");
    }

    #[test]
    fn only_plain_http_base_urls() {
        let t = Duration::from_secs(1);
        assert!(Client::new("http://127.0.0.1:8081", "t", t).is_ok());
        assert!(Client::new("http://127.0.0.1:8081/", "t", t).is_ok());
        for bad in [
            "https://h:1",
            "127.0.0.1:8081",
            "http://h:1/admin",
            "not a url",
        ] {
            let e = Client::new(bad, "t", t).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
