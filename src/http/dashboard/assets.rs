//! The stylesheet and the script, compiled into the binary. Pages link them with a version
//! (a hash of their content) in the query, so they may be cached for long.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// (name, content type, content).
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("assets/dashboard.css"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboard.js"),
    ),
];

/// The URL of asset `name`, with its version.
pub fn url(name: &str) -> &'static str {
    static URLS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let urls = URLS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(name, _, content)| {
                let hash = hex::encode(&Sha256::digest(content.as_bytes())[..6]);
                (*name, format!("/assets/{name}?v={hash}"))
            })
            .collect()
    });
    urls.iter()
        .find(|(n, _)| *n == name)
        .map_or("/assets/missing", |(_, url)| url.as_str())
}

/// `GET /assets/{name}`: public, cached for a day (a new version has a new URL).
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, content_type, content)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        ),
    ];
    (headers, *content).into_response()
}
