//! Registering, reading and listing servers.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use toolshed_core::domain::ServerId;

use crate::auth::Authenticated;
use crate::dto::{
    DriftResponse, ImportQuery, ImportedView, ListServersQuery, RegisterRequest,
    ServerJsonDocument, ServerPage, ServerView,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::schema::setting_values;
use crate::AppState;

/// Default page size of `GET /api/servers`.
const DEFAULT_PAGE: usize = 100;
use crate::schema::MAX_PAGE;

/// Registers a server (unverified; `POST /api/servers/{id}/reverify` verifies it).
#[utoipa::path(post, path = "/api/servers", tag = "servers",
    request_body(content = RegisterRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = ServerView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, description = "Invalid registration (settings and test values included)", body = ErrorBody),
    ))]
pub async fn register_server(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(mut request): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let test_values = setting_values("test_values", request.test_values.take())?;
    let registration = request.into_registration(state.allow_file_repos)?;
    let server = state
        .toolshed
        .register_server_with_test_values_as(&caller, registration, test_values)
        .await?;
    let location = format!("/api/servers/{}", server.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ServerView::new(&server)),
    ))
}

/// Imports a server from its MCP Registry description: the body is a `server.json` (schema
/// versions 2025-09-29 to 2025-12-11). A `pypi` or `npm` package is verified by building a
/// generated Dockerfile that installs it at its exact version; an `oci` image is verified by
/// digest without a build (a tag is resolved once and pinned); a remote (the first remote of a
/// document without a package this host runs) is verified by an MCP handshake at its https URL
/// through the deployment's egress policy and is never launched here. The server is
/// registered unverified, like `POST /api/servers`.
#[utoipa::path(post, path = "/api/import", tag = "servers", params(ImportQuery),
    request_body(content = ServerJsonDocument, content_type = "application/json"),
    responses(
        (status = 201, description = "Imported", body = ImportedView),
        (status = 400, description = "Malformed JSON or query", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, description = "A document, schema version, package or remote URL this host does not read or run", body = ErrorBody),
    ))]
pub async fn import_server(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<ImportQuery>,
    ApiJson(document): ApiJson<ServerJsonDocument>,
) -> ApiResult<impl IntoResponse> {
    let options = query.into_options()?;
    let bytes = serde_json::to_vec(&document.0)
        .map_err(|e| ApiError::invalid("server_json", e.to_string()))?;
    let imported = state
        .toolshed
        .import_server_as(&caller, &bytes, options)
        .await?;
    let location = format!("/api/servers/{}", imported.server.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ImportedView::new(&imported)),
    ))
}

/// Lists servers by id.
#[utoipa::path(get, path = "/api/servers", tag = "servers", params(ListServersQuery),
    responses(
        (status = 200, description = "A page of servers", body = ServerPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_servers(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListServersQuery>,
) -> ApiResult<Json<ServerPage>> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", format!("limit must be 1-{MAX_PAGE}"))
                .with_details(serde_json::json!({ "parameter": "limit" })),
        );
    }
    let servers = state.toolshed.list_servers(query.after, limit).await?;
    let next = (servers.len() == limit)
        .then(|| servers.last().map(|s| s.id.to_string()))
        .flatten();
    Ok(Json(ServerPage {
        servers: servers.iter().map(Into::into).collect(),
        next,
    }))
}

/// Reads a server: state, image, tools, metadata, last failure.
#[utoipa::path(get, path = "/api/servers/{id}", tag = "servers",
    params(("id" = String, Path, description = "Server id: [a-z0-9][a-z0-9-]{0,62}")),
    responses(
        (status = 200, description = "The server", body = ServerView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
    ))]
pub async fn get_server(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ServerId>,
) -> ApiResult<Json<ServerView>> {
    let server = state.toolshed.get_server(&id).await?;
    Ok(Json(ServerView::new(&server)))
}

/// What the last verification changed in the tools, compared with the verified version before
/// it: tools added or removed, changed descriptions of tools that kept their name, new required
/// parameters, changed input schemas.
#[utoipa::path(get, path = "/api/servers/{id}/drift", tag = "servers",
    params(("id" = String, Path, description = "Server id: [a-z0-9][a-z0-9-]{0,62}")),
    responses(
        (status = 200, description = "The drift of the last verification", body = DriftResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
    ))]
pub async fn get_drift(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ServerId>,
) -> ApiResult<Json<DriftResponse>> {
    let server = state.toolshed.get_server(&id).await?;
    Ok(Json(DriftResponse::new(&server)))
}
