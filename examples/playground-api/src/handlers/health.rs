//! Liveness.

use axum::extract::State;
use axum::Json;

use crate::dto::Health;
use crate::AppState;

/// Liveness: the process serves requests (no backend call, so a backend outage does not get the
/// process restarted).
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Serving", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        backend: state.backend.clone(),
        stdio_servers: state.stdio_servers.clone(),
    })
}
