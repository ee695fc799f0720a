//! Fetching a `server.json` by URL (`toolshed servers import https://…`), as untrusted input:
//! https only (redirects too, at most [`MAX_REDIRECTS`]), at most
//! [`crate::domain::server_json::MAX_SERVER_JSON_BYTES`] read (the body
//! is cut off, never buffered whole), within [`FETCH_TIMEOUT`], no credentials sent.

use std::time::Duration;

use url::Url;

use crate::domain::server_json::MAX_SERVER_JSON_BYTES;
use crate::error::{Error, Result};

/// The whole fetch, connection to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Redirects followed (each to an https URL).
pub const MAX_REDIRECTS: usize = 3;

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("server_json_url", reason)
}

/// Fetches `server.json` documents.
#[derive(Debug, Clone)]
pub struct ServerJsonFetcher {
    http: reqwest::Client,
    scheme: &'static str,
}

impl ServerJsonFetcher {
    /// A fetcher of https URLs.
    ///
    /// # Errors
    /// `Backend` when the HTTP client cannot be built.
    pub fn new() -> Result<Self> {
        Self::with_scheme("https")
    }

    fn with_scheme(scheme: &'static str) -> Result<Self> {
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if attempt.url().scheme() != scheme {
                attempt.error("a redirect left https")
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(policy)
            .build()
            .map_err(|e| Error::backend("http", "client", None, false, e))?;
        Ok(Self { http, scheme })
    }

    /// The document at `raw`.
    ///
    /// # Errors
    /// `InvalidInput { field: "server_json_url" }` for a URL that is not https (or carries
    /// credentials), an answer other than 200, a redirect to a non-https URL, or a body over
    /// the size limit; `Timeout` / `Backend` (retryable) when the host cannot be reached.
    pub async fn fetch(&self, raw: &str) -> Result<Vec<u8>> {
        let url = Url::parse(raw).map_err(|_| invalid("not a URL"))?;
        if url.scheme() != self.scheme {
            return Err(invalid("must be an https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let response = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Error::Timeout {
                        operation: "fetch server.json",
                        id: Some(host.clone()),
                        after_ms: FETCH_TIMEOUT.as_millis() as u64,
                    }
                } else if e.is_redirect() {
                    invalid(format!(
                        "{host}: redirect refused (https only, at most {MAX_REDIRECTS})"
                    ))
                } else {
                    Error::backend("http", "GET server.json", Some(host.clone()), true, e)
                }
            })?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(invalid(format!("{host} answered HTTP {}", status.as_u16())));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_SERVER_JSON_BYTES as u64)
        {
            return Err(invalid(format!(
                "the document is over the {MAX_SERVER_JSON_BYTES}-byte limit"
            )));
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Error::backend("http", "GET server.json", Some(host.clone()), true, e))?
        {
            if body.len() + chunk.len() > MAX_SERVER_JSON_BYTES {
                return Err(invalid(format!(
                    "the document is over the {MAX_SERVER_JSON_BYTES}-byte limit"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection-at-a-time HTTP server answering `answer(path)`.
    async fn serve(answer: fn(&str) -> String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
                let _ = socket.write_all(answer(&path).as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        format!("http://{addr}")
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn only_https_urls_are_fetched() {
        let fetcher = ServerJsonFetcher::new().unwrap();
        for bad in [
            "http://example.com/server.json",
            "file:///etc/passwd",
            "https://user:pw@example.com/server.json",
            "not a url",
        ] {
            let err = fetcher.fetch(bad).await.unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field, .. } if *field == "server_json_url"),
                "{bad}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_are_bounded_and_redirects_keep_the_scheme() {
        // The same rules over plain HTTP on loopback (no certificate needed): the scheme the
        // fetcher accepts is a parameter of the client, so this exercises the real policy.
        let base = serve(|path| match path {
            "/ok" => ok(r#"{"name":"x"}"#),
            "/big" => ok(&"x".repeat(MAX_SERVER_JSON_BYTES + 1)),
            "/chunked" => format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                MAX_SERVER_JSON_BYTES,
                "y".repeat(MAX_SERVER_JSON_BYTES),
                10,
                "z".repeat(10)
            ),
            "/hop" => "HTTP/1.1 302 Found\r\nlocation: /ok\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
            "/away" => "HTTP/1.1 302 Found\r\nlocation: https://example.invalid/x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
            "/loop" => "HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
            _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
        })
        .await;
        let fetcher = ServerJsonFetcher::with_scheme("http").unwrap();
        assert_eq!(
            fetcher.fetch(&format!("{base}/ok")).await.unwrap(),
            br#"{"name":"x"}"#
        );
        assert_eq!(
            fetcher.fetch(&format!("{base}/hop")).await.unwrap(),
            br#"{"name":"x"}"#
        );
        for (path, expected) in [
            ("/big", "byte limit"),
            ("/chunked", "byte limit"),
            ("/away", "redirect refused"),
            ("/loop", "redirect refused"),
            ("/missing", "HTTP 404"),
        ] {
            let err = fetcher.fetch(&format!("{base}{path}")).await.unwrap_err();
            assert!(err.to_string().contains(expected), "{path}: {err}");
        }
    }
}
