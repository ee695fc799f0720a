//! The API's edge against browser-borne attacks and floods: the Host allow-list (DNS
//! rebinding), JSON-only bodies (cross-site form posts), CORS by explicit allow-list, and rate
//! limits per client.
//!
//! A page on another site can make a browser send `POST`s to the API with a `text/plain` or form
//! body and no preflight, and a DNS name rebound to 127.0.0.1 makes the browser talk to a local
//! API under that foreign name. Requiring `application/json` on every body (a cross-site JSON
//! request needs a CORS preflight, which fails unless the origin is allowed) and checking `Host`
//! stop both, even when the API listens on loopback only.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::warn;

use crate::error::ApiError;

/// Names that always mean "this machine" (with the listen port, or any port).
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Which `Host` values the API answers; anything else is 421 Misdirected Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any host: only behind a proxy that checks the host itself.
    Any,
    /// These entries, lowercase: `name` matches that name with any port, `name:port` only that
    /// port.
    List(Vec<String>),
}

impl Default for AllowedHosts {
    /// `localhost`, `127.0.0.1` and `[::1]`, with any port (a router built in code does not know
    /// its listen port).
    fn default() -> Self {
        AllowedHosts::List(LOOPBACK_NAMES.iter().map(|s| (*s).to_owned()).collect())
    }
}

impl AllowedHosts {
    /// The listen address itself and the loopback names with its port.
    pub fn for_listen_addr(addr: &str) -> Self {
        let addr = addr.trim().to_ascii_lowercase();
        let port = addr.rsplit_once(':').map(|(_, p)| p.to_owned());
        let mut list = vec![addr.clone()];
        match port {
            Some(port) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
                list.extend(LOOPBACK_NAMES.iter().map(|n| format!("{n}:{port}")));
            }
            _ => list.extend(LOOPBACK_NAMES.iter().map(|n| (*n).to_owned())),
        }
        list.dedup();
        AllowedHosts::List(list)
    }

    /// Parses `TOOLSHED_API_ALLOWED_HOSTS`: `*`, or comma-separated `name` / `name:port`.
    ///
    /// # Errors
    /// An empty list or an entry with characters a host cannot have.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim() == "*" {
            return Ok(AllowedHosts::Any);
        }
        let list: Vec<String> = raw
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if list.is_empty() {
            return Err("give `*` or a comma-separated list of host[:port]".to_owned());
        }
        if let Some(bad) = list.iter().find(|h| {
            !h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        }) {
            return Err(format!("{bad:?} is not a host or host:port"));
        }
        Ok(AllowedHosts::List(list))
    }

    /// Whether a request's `Host` (`name` or `name:port`) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let list = match self {
            AllowedHosts::Any => return true,
            AllowedHosts::List(list) => list,
        };
        let host = host.trim().to_ascii_lowercase();
        let name = split_port(&host).0;
        list.iter()
            .any(|entry| entry == &host || (split_port(entry).1.is_none() && entry == name))
    }
}

/// `("name", Some("port"))` for `name:port` and `[v6]:port`.
fn split_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((_, tail)) => match tail.strip_prefix(':') {
                Some(port) => (&host[..host.len() - port.len() - 1], Some(port)),
                None => (host, None),
            },
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// Answers 421 `misdirected_request` when `Host` is not allowed (DNS rebinding: a foreign name
/// resolved to this machine).
pub(crate) async fn check_host(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(ToString::to_string));
    match host {
        Some(h) if allowed.allows(&h) => next.run(request).await,
        other => {
            warn!(host = ?other, "request for a host this API does not serve");
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                "this API does not serve the host named in the request; use its configured address",
            )
            .into_response()
        }
    }
}

/// Whether a content type is JSON (`application/json`, or `application/<x>+json`).
fn is_json(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Whether the request carries a body (declared length above 0, or chunked).
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// Answers 415 `unsupported_media_type` to a body that is not declared JSON, on every route
/// (those whose body is optional included). A request without body and without content type
/// passes.
pub(crate) async fn require_json(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let refused = match headers.get(header::CONTENT_TYPE) {
        Some(ct) => !is_json(ct),
        None => has_body(headers),
    };
    if refused {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies must be JSON: send content-type application/json",
        )
        .into_response();
    }
    next.run(request).await
}

/// The headers a browser may send cross-origin and read back.
fn cors_layer(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::LOCATION,
        ])
        .max_age(Duration::from_secs(600))
}

/// CORS for the configured origins; `None` (no CORS headers at all) when there are none.
pub(crate) fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    (!origins.is_empty()).then(|| cors_layer(origins))
}

/// Parses `TOOLSHED_API_CORS_ORIGINS`: comma-separated origins (`https://app.example.com`).
///
/// # Errors
/// An origin that is not `scheme://host[:port]`.
pub fn parse_origins(raw: &str) -> Result<Vec<HeaderValue>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
            && !origin.ends_with('/')
            && origin
                .split("://")
                .nth(1)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/') && !rest.contains('*'));
        if !valid {
            return Err(format!(
                "{origin:?} is not an origin (scheme://host[:port], no path, no wildcard)"
            ));
        }
        let value = HeaderValue::from_str(origin).map_err(|e| format!("{origin:?}: {e}"))?;
        if seen.insert(origin.to_owned()) {
            out.push(value);
        }
    }
    Ok(out)
}

/// Requests a client may make: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Requests allowed at once (the bucket size).
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` sustained with a `burst`; `None` when either is 0.
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        Some(Self {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    /// Parses `TOOLSHED_API_RATE_LIMIT`: `off`, or `<per second>/<burst>` (e.g. `20/60`).
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let parsed = raw
            .split_once('/')
            .and_then(|(r, b)| Some((r.trim().parse().ok()?, b.trim().parse().ok()?)))
            .and_then(|(r, b)| Self::new(r, b));
        match parsed {
            Some(limit) => Ok(Some(limit)),
            None => Err(format!(
                "{raw:?}: give `off` or `<requests per second>/<burst>`, both above 0"
            )),
        }
    }
}

impl Default for RateLimit {
    /// 20 requests per second, bursts of 60, per client.
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::MIN.saturating_add(19),
            burst: NonZeroU32::MIN.saturating_add(59),
        }
    }
}

/// The authenticated principal of a request, as a request extension. Rate limits are kept per
/// principal when the authentication layer (running before the limiter) sets it, per client
/// address otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrincipalId(pub String);

/// Who a rate limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Principal(String),
    Address(IpAddr),
    /// Served without connection info: every such request shares one bucket.
    Unknown,
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Principal(p) => write!(f, "principal {p}"),
            ClientKey::Address(a) => write!(f, "address {a}"),
            ClientKey::Unknown => f.write_str("unknown client"),
        }
    }
}

/// Clients tracked before idle ones are forgotten.
const RETAIN_THRESHOLD: usize = 10_000;

/// The keyed limiter shared by every request.
#[derive(Clone)]
pub(crate) struct RateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<ClientKey>>,
    clock: DefaultClock,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("clients", &self.limiter.len())
            .finish()
    }
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            clock: DefaultClock::default(),
        }
    }
}

fn client_key(request: &Request) -> ClientKey {
    if let Some(PrincipalId(p)) = request.extensions().get::<PrincipalId>() {
        return ClientKey::Principal(p.clone());
    }
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => ClientKey::Address(addr.ip()),
        None => ClientKey::Unknown,
    }
}

/// Answers 429 `rate_limited` with `Retry-After` when the client is over its limit.
pub(crate) async fn rate_limit(
    State(limiter): State<RateLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let key = client_key(&request);
    if let Err(not_until) = limiter.limiter.check_key(&key) {
        let wait = not_until.wait_time_from(limiter.clock.now());
        let seconds = u32::try_from(wait.as_secs())
            .unwrap_or(u32::MAX)
            .saturating_add(u32::from(wait.subsec_nanos() > 0))
            .max(1);
        warn!(client = %key, retry_after = seconds, "rate limited");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this client; retry after {seconds} s"),
        )
        .with_details(serde_json::json!({ "retry_after_seconds": seconds, "retryable": true }))
        .retry_after(seconds)
        .into_response();
    }
    if limiter.limiter.len() > RETAIN_THRESHOLD {
        limiter.limiter.retain_recent();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_or_name_and_port() {
        let default = AllowedHosts::default();
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(default.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2",
            "localhost.evil.example",
        ] {
            assert!(!default.allows(bad), "{bad}");
        }
        let listen = AllowedHosts::for_listen_addr("127.0.0.1:8080");
        assert!(listen.allows("127.0.0.1:8080"));
        assert!(listen.allows("localhost:8080"));
        assert!(listen.allows("[::1]:8080"));
        assert!(!listen.allows("localhost:9090"));
        assert!(!listen.allows("rebound.example:8080"));
        let list = AllowedHosts::parse("api.example.com, Internal:8443").unwrap();
        assert!(list.allows("api.example.com:443"));
        assert!(list.allows("internal:8443"));
        assert!(!list.allows("internal:80"));
        assert_eq!(AllowedHosts::parse("*").unwrap(), AllowedHosts::Any);
        assert!(AllowedHosts::parse(" , ").is_err());
        assert!(AllowedHosts::parse("a/b").is_err());
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            assert!(!is_json(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn origins_and_rate_limits_parse() {
        let o = parse_origins("https://app.example.com, http://localhost:3000").unwrap();
        assert_eq!(o.len(), 2);
        assert!(parse_origins("https://app.example.com/").is_err());
        assert!(parse_origins("*").is_err());
        assert!(parse_origins("https://*.example.com").is_err());
        assert!(parse_origins("").unwrap().is_empty());
        assert_eq!(RateLimit::parse("off").unwrap(), None);
        assert_eq!(RateLimit::parse("5/10").unwrap(), RateLimit::new(5, 10));
        assert!(RateLimit::parse("0/10").is_err());
        assert!(RateLimit::parse("fast").is_err());
        assert_eq!(RateLimit::default(), RateLimit::new(20, 60).unwrap());
    }
}
