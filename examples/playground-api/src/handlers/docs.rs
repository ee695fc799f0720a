//! A server's documentation: description, language, tools and the long Markdown docs.

use axum::extract::State;
use axum::Json;
use toolshed_core::domain::ServerId;
use toolshed_core::services::ServerDocs;

use crate::dto::{DocsResponse, FindingView, NamedCheckView};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiPath;
use crate::AppState;

/// The server's documentation. `markdown` is `null` until a verification generated it.
#[utoipa::path(get, path = "/api/servers/{id}/docs", tag = "servers",
    params(("id" = String, Path, description = "Server id")),
    responses(
        (status = 200, description = "Documentation", body = DocsResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 503, description = "Docs store unavailable", body = ErrorBody),
    ))]
pub async fn get_docs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ServerId>,
) -> ApiResult<Json<DocsResponse>> {
    let ServerDocs { server, markdown } = state.toolshed.server_docs(&id).await?;
    let docs = server.metadata.docs.as_ref();
    Ok(Json(DocsResponse {
        server_id: id.to_string(),
        description: server.metadata.description.as_ref().map(Into::into),
        language: server.metadata.language.as_ref().map(Into::into),
        tools: server.tools.tools.iter().map(Into::into).collect(),
        findings: server
            .tools
            .findings
            .iter()
            .cloned()
            .map(FindingView::from)
            .collect(),
        conformance: server
            .tools
            .conformance
            .iter()
            .flat_map(|report| report.checks.iter().map(NamedCheckView::from))
            .collect(),
        markdown,
        docs_key: docs.map(|d| d.key.clone()),
        commit: docs.map(|d| d.commit.to_string()),
    }))
}
