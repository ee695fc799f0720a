//! A server's warm pool (scope `admin`): how many ready sessions it keeps for launches to claim
//! at once, and how long they may wait unclaimed.

use axum::extract::State;
use axum::Json;
use toolshed_core::domain::ServerId;

use crate::auth::Authenticated;
use crate::dto::{ServerView, WarmPoolRequest};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// Sets a server's warm pool (scope `admin`); the pool fills (or, at size 0, retires) in the
/// background. Warm sessions count against the session caps like any live session.
#[utoipa::path(put, path = "/api/servers/{id}/warm-pool", tag = "servers",
    params(("id" = String, Path, description = "Server id: [a-z0-9][a-z0-9-]{0,62}")),
    request_body(content = WarmPoolRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Set: the server with its warm pool", body = ServerView),
        (status = 400, description = "A size above the deployment's cap or an idle TTL outside 60-86400 s: `invalid_input`", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "`not_launchable`: a remote server has no sessions to keep warm", body = ErrorBody),
    ))]
pub async fn set_warm_pool(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiJson(body): ApiJson<WarmPoolRequest>,
) -> ApiResult<Json<ServerView>> {
    let server = state
        .toolshed
        .set_warm_pool_as(&caller, &id, body.pool())
        .await?;
    state.toolshed.spawn_warm_top_up(id);
    Ok(Json(ServerView::new(&server)))
}
