//! Reviewing a verification the promotion policy held (scope `admin`): approve it (it goes live)
//! or reject it (it is dropped). Both name the candidate by its digest, so a candidate replaced
//! by a newer verification meanwhile is refused with 409 `review_mismatch`.

use axum::extract::State;
use axum::Json;
use toolshed_core::domain::ServerId;
use toolshed_core::services::Caller;

use crate::auth::Authenticated;
use crate::dto::{ReviewRequest, ServerView};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// Approves the candidate pending review (scope `admin`): it becomes the image launches run.
#[utoipa::path(post, path = "/api/servers/{id}/approve", tag = "verification",
    params(("id" = String, Path, description = "Server id: [a-z0-9][a-z0-9-]{0,62}")),
    request_body(content = ReviewRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Approved: the server with its new live image", body = ServerView),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "`digest` does not name the candidate pending review (replaced meanwhile, or none pending): `review_mismatch`", body = ErrorBody),
    ))]
pub async fn approve(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> ApiResult<Json<ServerView>> {
    decide(Decision::Approve, &state, &caller, &id, &body).await
}

/// Rejects the candidate pending review (scope `admin`): it is dropped, the live image stays,
/// and the rejection is the server's last failure.
#[utoipa::path(post, path = "/api/servers/{id}/reject", tag = "verification",
    params(("id" = String, Path, description = "Server id: [a-z0-9][a-z0-9-]{0,62}")),
    request_body(content = ReviewRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected: the server, its live image unchanged", body = ServerView),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "`digest` does not name the candidate pending review (replaced meanwhile, or none pending): `review_mismatch`", body = ErrorBody),
    ))]
pub async fn reject(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> ApiResult<Json<ServerView>> {
    decide(Decision::Reject, &state, &caller, &id, &body).await
}

/// What a review does with the candidate.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

/// Both reviews: the body names the candidate (checked first, 422), the service decides as the
/// caller (whose scope it checks) and the server is answered as it is afterwards.
async fn decide(
    decision: Decision,
    state: &AppState,
    caller: &Caller,
    id: &ServerId,
    body: &ReviewRequest,
) -> ApiResult<Json<ServerView>> {
    let candidate = body.candidate()?;
    let toolshed = &state.toolshed;
    let server = match decision {
        Decision::Approve => {
            toolshed
                .approve_verification_as(caller, id, candidate)
                .await?
        }
        Decision::Reject => {
            toolshed
                .reject_verification_as(caller, id, candidate)
                .await?
        }
    };
    Ok(Json(ServerView::new(&server)))
}
