//! Authentication and the scope each route needs.
//!
//! Every route but `/healthz` and `/openapi.json` needs credentials, sent as
//! `Authorization: Bearer <credential>` or `X-Api-Key: <key>`:
//!
//! - an API key (`tsk_<id>_<secret>`): looked up by id on every request (a revoked key stops
//!   working at once), its secret checked against the stored SHA-256 in constant time;
//! - a JWT of the embedding application's identity provider, verified against its JWKS (issuer,
//!   audience, expiry with a small leeway, an allow-list of algorithms). Keys are cached and
//!   fetched again when a token names an unknown `kid`, at most once per refresh interval.
//!
//! The middleware then checks the scope the matched route needs ([`required_scope`]), before
//! any body or parameter is read, and hands the handlers a [`Caller`]; the services check scope
//! and ownership again. Credentials are never logged: failures log only their kind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};
use toolshed_core::domain::{PresentedApiKey, Principal, PrincipalId, PrincipalQuotas, Scope};
use toolshed_core::services::{ApiKeyCheck, Caller, Toolshed};
use tracing::{debug, warn};

use crate::error::ApiError;

/// Whether the API asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every protected route needs an API key or a JWT (the default).
    Required,
    /// No authentication: every caller is the machine's operator (an admin). Only for an API
    /// listening on loopback; the binary refuses it with any other address.
    Off,
}

/// Verification of JWTs from an identity provider.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSettings {
    /// Where the provider publishes its keys (`TOOLSHED_API_JWKS_URL`).
    pub jwks_url: String,
    /// The required `iss` (`TOOLSHED_API_JWT_ISSUER`).
    pub issuer: String,
    /// The required `aud` (`TOOLSHED_API_JWT_AUDIENCE`).
    pub audience: String,
    /// Accepted algorithms (`TOOLSHED_API_JWT_ALGORITHMS`, default `RS256,ES256`); never `none`,
    /// never HMAC (the API holds no shared secret).
    pub algorithms: Vec<Algorithm>,
    /// The claim holding the scopes, space-separated or an array (`TOOLSHED_API_JWT_SCOPE_CLAIM`,
    /// default `scope`).
    pub scope_claim: String,
    /// Clock skew tolerated on `exp`/`nbf` (default 30 s).
    pub leeway: Duration,
    /// Shortest time between two JWKS fetches (default 30 s), so unknown `kid`s cannot make the
    /// API hammer the provider.
    pub min_refresh_interval: Duration,
}

impl JwtSettings {
    /// Settings with the defaults: RS256 and ES256, claim `scope`, 30 s leeway and refresh.
    pub fn new(
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            scope_claim: "scope".to_owned(),
            leeway: Duration::from_secs(30),
            min_refresh_interval: Duration::from_secs(30),
        }
    }
}

/// The `auth` part of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSettings {
    /// Required (default) or off.
    pub mode: AuthMode,
    /// JWT verification (`None`: API keys only).
    pub jwt: Option<JwtSettings>,
    /// Quotas of every principal but admins.
    pub quotas: PrincipalQuotas,
}

impl Default for AuthSettings {
    /// Secure by default: API keys required, no JWT provider, default quotas.
    fn default() -> Self {
        Self {
            mode: AuthMode::Required,
            jwt: None,
            quotas: PrincipalQuotas::default(),
        }
    }
}

impl AuthSettings {
    /// Reads `TOOLSHED_API_AUTH` (`required`, the default, or `off`), the JWT settings (all of
    /// `TOOLSHED_API_JWKS_URL`, `_JWT_ISSUER`, `_JWT_AUDIENCE`, or none) and the quotas
    /// (`TOOLSHED_API_QUOTA_LIVE_SESSIONS`, `_LAUNCHES_PER_MINUTE`, `_VERIFICATIONS_PER_HOUR`).
    ///
    /// # Errors
    /// A malformed or incomplete setting, naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mode = match get("TOOLSHED_API_AUTH").as_deref() {
            None | Some("required") | Some("on") => AuthMode::Required,
            Some("off") => AuthMode::Off,
            Some(other) => {
                anyhow::bail!("TOOLSHED_API_AUTH must be `required` or `off`, not {other:?}")
            }
        };
        let jwt = match (
            get("TOOLSHED_API_JWKS_URL"),
            get("TOOLSHED_API_JWT_ISSUER"),
            get("TOOLSHED_API_JWT_AUDIENCE"),
        ) {
            (None, None, None) => None,
            (Some(url), Some(iss), Some(aud)) => {
                let mut jwt = JwtSettings::new(url, iss, aud);
                if let Some(list) = get("TOOLSHED_API_JWT_ALGORITHMS") {
                    jwt.algorithms = parse_algorithms(&list)?;
                }
                if let Some(claim) = get("TOOLSHED_API_JWT_SCOPE_CLAIM") {
                    jwt.scope_claim = claim;
                }
                Some(jwt)
            }
            _ => anyhow::bail!(
                "JWT verification needs all of TOOLSHED_API_JWKS_URL, TOOLSHED_API_JWT_ISSUER and TOOLSHED_API_JWT_AUDIENCE"
            ),
        };
        let mut quotas = PrincipalQuotas::default();
        for (name, slot) in [
            (
                "TOOLSHED_API_QUOTA_LIVE_SESSIONS",
                &mut quotas.live_sessions,
            ),
            (
                "TOOLSHED_API_QUOTA_LAUNCHES_PER_MINUTE",
                &mut quotas.launches_per_minute,
            ),
            (
                "TOOLSHED_API_QUOTA_VERIFICATIONS_PER_HOUR",
                &mut quotas.verifications_per_hour,
            ),
        ] {
            if let Some(v) = get(name) {
                *slot = v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name} must be a whole number, not {v:?}"))?;
            }
        }
        Ok(Self { mode, jwt, quotas })
    }
}

fn parse_algorithms(list: &str) -> anyhow::Result<Vec<Algorithm>> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let alg: Algorithm = a.parse().map_err(|_| {
                anyhow::anyhow!("TOOLSHED_API_JWT_ALGORITHMS: unknown algorithm {a:?}")
            })?;
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                anyhow::bail!("TOOLSHED_API_JWT_ALGORITHMS: {a} needs a shared secret; use an asymmetric algorithm");
            }
            Ok(alg)
        })
        .collect()
}

/// The scope a route needs; `None` for the public routes. A route missing here needs `admin`,
/// so a new route is closed until it is given a scope.
pub fn required_scope(method: &Method, route: &str) -> Option<Scope> {
    match (method.as_str(), route) {
        (_, "/healthz" | "/openapi.json") => None,
        ("POST", "/api/servers" | "/api/import" | "/api/servers/{id}/reverify") => {
            Some(Scope::ServersWrite)
        }
        // Deciding what launches run is an admin's call.
        ("POST", "/api/servers/{id}/approve" | "/api/servers/{id}/reject") => Some(Scope::Admin),
        // Warm pools cost running tasks: an admin's call too.
        ("PUT", "/api/servers/{id}/warm-pool") => Some(Scope::Admin),
        (
            _,
            "/api/servers/{id}/playground"
            | "/api/servers/{id}/playground/status"
            | "/api/servers/{id}/playground/stop"
            | "/api/playground/{session_id}"
            | "/api/servers/{id}/execute"
            | "/api/instances"
            | "/api/instances/{instance_id}"
            | "/api/instances/{instance_id}/stop"
            | "/api/instances/{instance_id}/restart"
            | "/api/instances/{instance_id}/logs",
        ) => Some(Scope::Sessions),
        ("GET", r) if r.starts_with("/api/") => Some(Scope::Read),
        _ => Some(Scope::Admin),
    }
}

/// Why credentials were refused (logged; the answer is the same 401 for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Malformed,
    UnknownKey,
    WrongSecret,
    JwtNotConfigured,
    JwtAlgorithm,
    JwtUnknownKid,
    JwtInvalid,
    JwtClaims,
    Backend,
}

/// Checks credentials and builds the [`Caller`].
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.inner.mode)
            .field("jwt", &self.inner.jwt.as_ref().map(|j| &j.settings))
            .finish_non_exhaustive()
    }
}

struct Inner {
    mode: AuthMode,
    quotas: PrincipalQuotas,
    toolshed: Toolshed,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    /// An authenticator over the service's API keys and, when configured, the JWKS.
    pub fn new(settings: &AuthSettings, toolshed: Toolshed) -> Self {
        let jwt = settings.jwt.clone().map(JwtVerifier::new);
        Self {
            inner: Arc::new(Inner {
                mode: settings.mode,
                quotas: settings.quotas,
                toolshed,
                jwt,
            }),
        }
    }

    /// The caller the request's credentials prove. Admins have no quota.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        let principal = match self.inner.mode {
            AuthMode::Off => Principal::local_operator(),
            AuthMode::Required => self.principal(headers).await?,
        };
        let quotas = if principal.is_admin() {
            PrincipalQuotas {
                live_sessions: u32::MAX,
                launches_per_minute: u32::MAX,
                verifications_per_hour: u32::MAX,
            }
        } else {
            self.inner.quotas
        };
        Ok(Caller::new(principal, quotas))
    }

    async fn principal(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        let credential = credential(headers)?;
        if let Some(key) = PresentedApiKey::parse(credential) {
            return self.api_key(&key).await;
        }
        if credential.starts_with(toolshed_core::domain::API_KEY_PREFIX) {
            return Err(Refusal::Malformed);
        }
        match &self.inner.jwt {
            Some(jwt) => jwt.verify(credential).await,
            None => Err(Refusal::JwtNotConfigured),
        }
    }

    async fn api_key(&self, presented: &PresentedApiKey) -> Result<Principal, Refusal> {
        match self.inner.toolshed.check_api_key(presented).await {
            Ok(ApiKeyCheck::Valid(principal)) => Ok(principal),
            Ok(ApiKeyCheck::Unknown) => Err(Refusal::UnknownKey),
            Ok(ApiKeyCheck::Rejected) => Err(Refusal::WrongSecret),
            Err(e) => {
                warn!(key_id = %presented.id, error = %e, "API key lookup failed");
                Err(Refusal::Backend)
            }
        }
    }
}

/// The credential of `Authorization: Bearer …` or `X-Api-Key`.
fn credential(headers: &HeaderMap) -> Result<&str, Refusal> {
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().map(str::trim).map_err(|_| Refusal::Malformed);
    }
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Err(Refusal::Missing);
    };
    let v = v.to_str().map_err(|_| Refusal::Malformed)?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(Refusal::Malformed),
    }
}

/// JWKS keys by `kid`, with the algorithm each declares.
type KeyCache = HashMap<String, (DecodingKey, Option<String>)>;

struct JwtVerifier {
    settings: JwtSettings,
    http: reqwest::Client,
    keys: RwLock<KeyCache>,
    /// When the JWKS was last fetched; the lock also makes concurrent refreshes wait for one.
    last_fetch: Mutex<Option<Instant>>,
}

impl JwtVerifier {
    fn new(settings: JwtSettings) -> Self {
        Self {
            settings,
            http: reqwest::Client::new(),
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
        }
    }

    async fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::JwtInvalid)?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(Refusal::JwtAlgorithm);
        }
        let kid = header.kid.ok_or(Refusal::JwtUnknownKid)?;
        let (key, key_alg) = self.key(&kid).await?;
        if key_alg.is_some_and(|a| a != format!("{:?}", header.alg)) {
            return Err(Refusal::JwtAlgorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.settings.leeway.as_secs();
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|_| Refusal::JwtInvalid)?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|s| PrincipalId::new(s).ok())
            .ok_or(Refusal::JwtClaims)?;
        let scopes = match claims.get(&self.settings.scope_claim) {
            Some(Value::String(list)) => Scope::parse_lenient(list),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|s| s.parse().ok())
                .collect(),
            _ => Default::default(),
        };
        Ok(Principal { id: sub, scopes })
    }

    /// The key `kid`, fetching the JWKS when it is unknown and the last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Option<String>), Refusal> {
        if let Some(k) = self.keys.read().await.get(kid) {
            return Ok(k.clone());
        }
        let mut last = self.last_fetch.lock().await;
        // Somebody else may have fetched while this request waited for the lock.
        if let Some(k) = self.keys.read().await.get(kid) {
            return Ok(k.clone());
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.min_refresh_interval) {
            return Err(Refusal::JwtUnknownKid);
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => *self.keys.write().await = keys,
            Err(e) => warn!(error = %e, "could not fetch the JWKS"),
        }
        self.keys
            .read()
            .await
            .get(kid)
            .cloned()
            .ok_or(Refusal::JwtUnknownKid)
    }

    async fn fetch(&self) -> Result<KeyCache, String> {
        let set: JwkSet = self
            .http
            .get(&self.settings.jwks_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET JWKS: {}", e.without_url()))?
            .json()
            .await
            .map_err(|e| format!("JWKS body: {}", e.without_url()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    let alg = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
                    keys.insert(kid.clone(), (key, alg));
                }
                Err(e) => debug!(%kid, error = %e, "JWKS key skipped"),
            }
        }
        Ok(keys)
    }
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or invalid credentials: send an API key (X-Api-Key or Authorization: Bearer) or a bearer JWT",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The middleware: public routes pass; others need credentials (401) and the route's scope
/// (403), checked before the handler reads anything. The [`Caller`] goes into the request's
/// extensions.
pub(crate) async fn authenticate(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let needed = match &route {
        Some(r) => required_scope(request.method(), r),
        // Unknown routes answer 404 without credentials: nothing is behind them.
        None => return next.run(request).await,
    };
    let Some(scope) = needed else {
        return next.run(request).await;
    };
    let caller = match auth.caller(request.headers()).await {
        Ok(c) => c,
        Err(Refusal::Backend) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backend_unavailable",
                "credentials could not be checked; retry",
            )
            .retry_after(1)
            .into_response()
        }
        Err(reason) => {
            debug!(?reason, "credentials refused");
            return unauthorized();
        }
    };
    if let Err(e) = caller.principal.require(scope) {
        return ApiError::from(e).into_response();
    }
    // The rate limit (after this layer) is kept per principal.
    request
        .extensions_mut()
        .insert(crate::edge::PrincipalId(caller.principal.id.to_string()));
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The authenticated caller, for handlers.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| {
                // Only a route registered without the middleware gets here: fail closed.
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing credentials",
                )
            })
    }
}

/// Declares the security schemes (`api_key`: header `X-Api-Key`; `bearer`: an API key or a JWT
/// in `Authorization`) and, on every protected operation, the requirement, the scope it needs
/// and its 401 and 403 answers. Derived from [`required_scope`], so the document and the
/// middleware never disagree.
pub(crate) fn document_security(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::content::ContentBuilder;
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{Ref, RefOr, ResponseBuilder};

    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Api-Key",
            "An API key, tsk_<id>_<secret> (toolshed api-keys create)",
        ))),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A JWT of the configured identity provider, or an API key",
                ))
                .build(),
        ),
    );
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            (Method::GET, item.get.as_mut()),
            (Method::POST, item.post.as_mut()),
            (Method::PUT, item.put.as_mut()),
            (Method::DELETE, item.delete.as_mut()),
            (Method::PATCH, item.patch.as_mut()),
        ] {
            let Some(op) = op else { continue };
            let Some(scope) = required_scope(&method, path) else {
                continue;
            };
            op.security = Some(vec![
                SecurityRequirement::new("api_key", Vec::<String>::new()),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
            ]);
            let note = format!("Needs the scope `{scope}` (or `admin`).");
            op.description = Some(match op.description.take() {
                Some(d) => format!("{d}\n\n{note}"),
                None => note,
            });
            op.responses.responses.insert(
                "401".to_owned(),
                error("Missing, invalid, expired or revoked credentials"),
            );
            op.responses.responses.insert(
                "403".to_owned(),
                error("The credentials lack the scope this operation needs"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_secure_by_default_and_validated() {
        let none = AuthSettings::from_lookup(|_| None).unwrap();
        assert_eq!(none, AuthSettings::default());
        assert_eq!(none.mode, AuthMode::Required);
        let off = AuthSettings::from_lookup(|n| (n == "TOOLSHED_API_AUTH").then(|| "off".into()));
        assert_eq!(off.unwrap().mode, AuthMode::Off);
        assert!(
            AuthSettings::from_lookup(|n| (n == "TOOLSHED_API_AUTH").then(|| "no".into())).is_err()
        );
        let partial = AuthSettings::from_lookup(|n| {
            (n == "TOOLSHED_API_JWKS_URL").then(|| "http://idp/jwks".into())
        });
        assert!(partial
            .unwrap_err()
            .to_string()
            .contains("TOOLSHED_API_JWT_ISSUER"));
        assert!(parse_algorithms("RS256, ES256").is_ok());
        assert!(parse_algorithms("HS256").is_err());
        assert!(parse_algorithms("none").is_err());
    }

    #[test]
    fn routes_need_their_scope_and_unknown_ones_admin() {
        assert_eq!(required_scope(&Method::GET, "/healthz"), None);
        assert_eq!(
            required_scope(&Method::POST, "/api/servers"),
            Some(Scope::ServersWrite)
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/servers/{id}"),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/api/playground/{session_id}"),
            Some(Scope::Sessions)
        );
        assert_eq!(required_scope(&Method::PUT, "/api/new"), Some(Scope::Admin));
    }

    #[test]
    fn credentials_come_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), Err(Refusal::Missing));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&h), Err(Refusal::Malformed));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tok"),
        );
        assert_eq!(credential(&h), Ok("tok"));
        h.insert("x-api-key", HeaderValue::from_static("tsk_x"));
        assert_eq!(credential(&h), Ok("tsk_x"));
    }
}
