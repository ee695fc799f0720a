//! API-key management for admins: create (the secret is answered once), list, revoke — the same
//! use cases as `toolshed api-keys`, on whatever backend the API runs (SQLite or DynamoDB).
//! Answers never carry a key's hash.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use toolshed_core::domain::{ApiKey, ApiKeyId, NewApiKey, PrincipalId, Scope, Timestamp};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// A scope a key grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ScopeName {
    /// Register servers and start verifications.
    #[serde(rename = "servers:write")]
    ServersWrite,
    /// Launch, use and stop sessions; run instances.
    #[serde(rename = "sessions")]
    Sessions,
    /// Read servers, verification status and docs.
    #[serde(rename = "read")]
    Read,
    /// Everything, every principal's records, key management.
    #[serde(rename = "admin")]
    Admin,
}

impl From<ScopeName> for Scope {
    fn from(s: ScopeName) -> Self {
        match s {
            ScopeName::ServersWrite => Scope::ServersWrite,
            ScopeName::Sessions => Scope::Sessions,
            ScopeName::Read => Scope::Read,
            ScopeName::Admin => Scope::Admin,
        }
    }
}

impl From<Scope> for ScopeName {
    fn from(s: Scope) -> Self {
        match s {
            Scope::ServersWrite => ScopeName::ServersWrite,
            Scope::Sessions => ScopeName::Sessions,
            Scope::Read => ScopeName::Read,
            Scope::Admin => ScopeName::Admin,
        }
    }
}

/// `POST /api/api-keys` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyBody {
    /// A human name, 1-64 visible characters.
    pub name: String,
    /// The scopes it grants (at least one).
    pub scopes: Vec<ScopeName>,
    /// The principal it acts as: 1-256 visible ASCII characters.
    pub owner: String,
}

/// A stored key, without its secret or hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    /// Id (the lookup part of the key).
    pub id: String,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<ScopeName>,
    /// The principal it acts as.
    pub owner: String,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last use (written at most once a minute).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// Revocation time; a revoked key never authenticates again.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            scopes: k.scopes.iter().copied().map(ScopeName::from).collect(),
            owner: k.owner.to_string(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key and its secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The stored key.
    pub key: ApiKeyView,
    /// `tsk_<id>_<secret>`: send it as a bearer token or in `X-Api-Key`. Not stored; keep it.
    pub secret: String,
}

/// Keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys by id, revoked ones included.
    pub keys: Vec<ApiKeyView>,
}

/// `GET /api/api-keys` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeysQuery {
    /// Only this principal's keys.
    pub owner: Option<String>,
}

/// Creates an API key (scope `admin`). The answer holds the secret, shown this once.
#[utoipa::path(post, path = "/api/api-keys", tag = "api-keys",
    request_body(content = CreateApiKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Invalid name, scopes or owner", body = ErrorBody),
    ))]
pub async fn create_api_key(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<CreateApiKeyBody>,
) -> ApiResult<impl IntoResponse> {
    let new = NewApiKey {
        name: body.name,
        scopes: body.scopes.into_iter().map(Scope::from).collect(),
        owner: PrincipalId::new(body.owner)?,
    };
    let (key, secret) = state.toolshed.create_api_key_as(&caller, new).await?;
    let view = ApiKeyView::from(&key);
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(CreatedApiKey {
            key: view,
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// Lists API keys, revoked ones included (scope `admin`).
#[utoipa::path(get, path = "/api/api-keys", tag = "api-keys", params(ApiKeysQuery),
    responses(
        (status = 200, description = "Keys by id", body = ApiKeyList),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 422, description = "Invalid owner", body = ErrorBody),
    ))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<ApiKeysQuery>,
) -> ApiResult<Json<ApiKeyList>> {
    let owner = q.owner.map(PrincipalId::new).transpose()?;
    let keys = state.toolshed.list_api_keys_as(&caller, owner).await?;
    Ok(Json(ApiKeyList {
        keys: keys.iter().map(ApiKeyView::from).collect(),
    }))
}

/// Revokes an API key at once (scope `admin`). Idempotent.
#[utoipa::path(post, path = "/api/api-keys/{key_id}/revoke", tag = "api-keys",
    params(("key_id" = String, Path, description = "Key id (16 hex characters)")),
    responses(
        (status = 200, description = "Revoked", body = ApiKeyView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> ApiResult<Json<ApiKeyView>> {
    let key = state.toolshed.revoke_api_key_as(&caller, &id).await?;
    Ok(Json(ApiKeyView::from(&key)))
}
