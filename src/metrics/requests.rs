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
struct RouteTemplate(String);

/// The `route` label of requests no route matched (or answered before routing): one value for
/// all of them, whatever their paths.
const UNMATCHED: &str = "unmatched";

/// The actions the catch-all routes (`/containers/{*rest}`, `/images/{*rest}`,
/// `/exec/{*rest}`) dispatch on. A path ending in one of them is labelled with it
/// (`/containers/{name}/start`); any other ending is labelled without (`/containers/{name}`),
/// so the label set stays this list, whatever clients send.
const ACTIONS: [&str; 24] = [
    "archive", "attach", "changes", "copy", "exec", "export", "get", "history", "json", "kill",
    "logs", "pause", "push", "rename", "resize", "restart", "start", "stats", "stop", "tag", "top",
    "unpause", "update", "wait",
];

/// The label of a request `template` matched for `path`: the template itself, except for the
/// catch-all routes, whose object name is replaced and whose action is kept.
fn route_label(template: &str, path: &str) -> String {
    let Some(prefix) = template.strip_suffix("/{*rest}") else {
        return template.to_string();
    };
    let placeholder = if prefix == "/exec" { "{id}" } else { "{name}" };
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let last = segments.next().unwrap_or_default();
    let action = match last {
        "ws" if segments.next() == Some("attach") => "/attach/ws",
        action if ACTIONS.contains(&action) && path.len() > prefix.len() + action.len() + 2 => {
            return format!("{prefix}/{placeholder}/{action}");
        }
        _ => "",
    };
    format!("{prefix}/{placeholder}{action}")
}

/// Route layer: puts the matched route template on the response.
pub async fn tag_route(req: Request, next: Next) -> Response {
    if !super::is_enabled() {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|template| route_label(template.as_str(), req.uri().path()));
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

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn catch_all_routes_are_labelled_by_action_never_by_object_name() {
        let cases = [
            (
                "/containers/create",
                "/containers/create",
                "/containers/create",
            ),
            (
                "/containers/{*rest}",
                "/containers/web-1/start",
                "/containers/{name}/start",
            ),
            (
                "/containers/{*rest}",
                "/containers/abc/json",
                "/containers/{name}/json",
            ),
            (
                "/containers/{*rest}",
                "/containers/abc/attach/ws",
                "/containers/{name}/attach/ws",
            ),
            (
                "/containers/{*rest}",
                "/containers/abc",
                "/containers/{name}",
            ),
            (
                "/containers/{*rest}",
                "/containers/abc/alias-9",
                "/containers/{name}",
            ),
            // A container named like an action is still a name.
            (
                "/containers/{*rest}",
                "/containers/start",
                "/containers/{name}",
            ),
            (
                "/images/{*rest}",
                "/images/reg:5000/app/x/tag",
                "/images/{name}/tag",
            ),
            ("/exec/{*rest}", "/exec/0123abcd/start", "/exec/{id}/start"),
            ("/volumes/{*name}", "/volumes/data", "/volumes/{*name}"),
        ];
        for (template, path, label) in cases {
            assert_eq!(route_label(template, path), label, "{path}");
        }
    }
}
