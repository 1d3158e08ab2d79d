//! The web dashboard: server-rendered HTML pages over the same domain services as the API,
//! for a user signed in with a session cookie (see [`session`]).
//!
//! One module per page; the templates (askama, compiled into the binary) are in
//! `templates/`, the stylesheet and the one small script in `assets/`. Pages read without
//! JavaScript; the script only keeps them live (an `EventSource` on [`live`], which re-renders
//! the parts of a page marked `data-live` from the server) and ticks relative times.
//!
//! **Routing.** The dashboard is not part of the API, so its routes are not in the OpenAPI
//! document: [`router`] is a plain axum router, merged beside the documented one in
//! [`crate::http::router`]. This directory is the only place routes are added outside
//! `routes!` (`tests/routes.rs` allows exactly it). Every route here answers HTML (or the
//! assets and the live stream); none starts with `/v1` or `/client/v4`.

mod assets;
mod charts;
mod devices;
mod events;
mod format;
mod live;
mod page;
mod session;
mod tokens;
mod tunnels;
mod webhooks;

use axum::http::{header, HeaderValue};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};

use crate::state::AppState;

pub use page::Layout;

/// The pages in the navigation, in order: (key, path, label).
pub const NAV: [(&str, &str, &str); 5] = [
    ("tunnels", "/tunnels", "Tunnels"),
    ("devices", "/devices", "Devices"),
    ("events", "/events", "Events"),
    ("webhooks", "/webhooks", "Webhooks"),
    ("tokens", "/tokens", "API tokens"),
];

/// The dashboard's routes, with the headers every answer of it carries.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/tunnels") }))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/tunnels", get(tunnels::list))
        .route("/tunnels/{id}", get(tunnels::show))
        .route("/tunnels/{id}/stop", post(tunnels::stop))
        .route("/tunnels/{id}/delete", post(tunnels::delete))
        .route("/devices", get(devices::list))
        .route("/devices/{id}", get(devices::show))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/events", get(events::list))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::show))
        .route("/webhooks/{id}/ping", post(webhooks::ping))
        .route("/webhooks/{id}/enabled", post(webhooks::set_enabled))
        .route("/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/webhooks/{id}/delete", post(webhooks::delete))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route(live::PATH, get(live::stream))
        .route("/assets/{name}", get(assets::serve))
        .layer(middleware::map_response(protect))
}

/// The content security policy: nothing but this origin's own script, styles and forms; no
/// inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers for every dashboard answer: no caching of pages (they show secrets once and
/// another account may use the browser next), no framing, no sniffing, a strict CSP.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}
