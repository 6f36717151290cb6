//! The swarm-mode routes (`/swarm…`, `/nodes`, `/services`, `/tasks`, `/secrets`, `/configs`):
//! the manager is no swarm-mode manager, so it answers every method on them as a Docker 20.10
//! engine outside swarm mode does, a 503 with the engine's words, and SDKs and the CLI report
//! "not a swarm manager" instead of a missing route. `init` and `join` get the same answer:
//! the manager cannot become part of a swarm-mode cluster.
use axum::routing::any;
use axum::Router;
use http::StatusCode;

use super::error::ApiError;
use super::state::AppState;

/// What an engine that is not in swarm mode answers to calls that need a manager.
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// What it answers to `POST /swarm/leave`.
const NOT_IN_A_SWARM: &str = "This node is not part of a swarm";

/// The swarm-mode routes, every method and sub-path.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/swarm/leave", any(not_in_a_swarm))
        .route("/swarm", any(not_a_manager))
        .route("/swarm/{*rest}", any(not_a_manager));
    for prefix in ["/nodes", "/services", "/tasks", "/secrets", "/configs"] {
        router = router
            .route(prefix, any(not_a_manager))
            .route(&format!("{prefix}/{{*rest}}"), any(not_a_manager));
    }
    router
}

async fn not_a_manager() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER)
}

async fn not_in_a_swarm() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_IN_A_SWARM)
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::api::testing::call;

    #[tokio::test]
    async fn swarm_mode_routes_answer_like_an_engine_outside_swarm_mode() {
        let cases = [
            (Method::GET, "/swarm", NOT_A_MANAGER),
            (Method::POST, "/swarm/init", NOT_A_MANAGER),
            (Method::POST, "/v1.40/swarm/leave?force=1", NOT_IN_A_SWARM),
            (Method::GET, "/nodes", NOT_A_MANAGER),
            (Method::DELETE, "/services/web", NOT_A_MANAGER),
            (Method::GET, "/tasks/t1/logs", NOT_A_MANAGER),
            (Method::POST, "/secrets/create", NOT_A_MANAGER),
            (Method::POST, "/configs/c1/update", NOT_A_MANAGER),
        ];
        for (method, path, message) in cases {
            let answer = call(method.clone(), path, "").await;
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path}"
            );
            assert_eq!(answer.message(), message, "{method} {path}");
        }
    }
}
