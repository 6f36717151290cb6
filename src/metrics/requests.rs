//! The two middleware functions that count API requests. The API router strips the `/vX.Y`
//! prefix before routing, so the route template is known only inside it: [`tag_route`] runs
//! there (as a route layer) and hands the template out on the response; [`count_requests`]
//! runs outside everything and counts each request once, whoever answered it (a route, the
//! version check, a redirect, the relay to the primary).
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The route template a response was produced by, carried out of the router.
#[derive(Debug, Clone)]
struct RouteTemplate(MatchedPath);

/// The `route` label of requests no route matched (or answered before routing): one value for
/// all of them, whatever their paths.
const UNMATCHED: &str = "unmatched";

/// Route layer: puts the matched route template on the response.
pub async fn tag_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(RouteTemplate(route));
    }
    resp
}

/// Outermost layer: counts the request by route template, method and status, with the time
/// until its response headers (streams are counted when they start, not when they end).
pub async fn count_requests(req: Request, next: Next) -> Response {
    if !super::is_enabled() {
        return next.run(req).await;
    }
    let started = tokio::time::Instant::now();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteTemplate>()
        .map_or(UNMATCHED, |template| template.0.as_str());
    super::api_request(route, &method, resp.status().as_u16(), started.elapsed());
    resp
}
