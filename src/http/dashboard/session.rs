//! Signing in and out, and the two extractors every other page uses: [`Signed`] (the
//! session of the request's cookie, else a redirect to the sign-in page) and [`Posted`] (a
//! signed-in form post whose CSRF token is the session's, else 403).
//!
//! **The cookie.** `warren_session` holds a random secret (the server keeps only its hash);
//! `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` when the request came over https: when
//! `WARREN_SECURE_COOKIES` is set, or when a trusted proxy (`WARREN_TRUSTED_PROXIES`) says
//! `X-Forwarded-Proto: https` (Warren itself serves plain HTTP, so https only ever ends at a
//! proxy). The sign-in form, which has no session yet, is protected by a double-submit
//! cookie (`warren_signin`) instead.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::assets;
use super::page::{html, Fields, PageError};
use crate::auth::sessions::{constant_time_eq, random_secret};
use crate::auth::Session;
use crate::error::Error;
use crate::http::caller::OriginIp;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "warren_session";
const SIGNIN_COOKIE: &str = "warren_signin";
/// The header the dashboard's script sends with its requests: such a request signed out is
/// answered 401, not redirected to the sign-in page.
pub const SCRIPT_HEADER: &str = "x-warren-dashboard";

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the browser reached us over https (see the module's documentation).
pub struct Https(pub bool);

impl FromRequestParts<AppState> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(over_https(parts, state)))
    }
}

fn over_https(parts: &Parts, state: &AppState) -> bool {
    if state.config.secure_cookies {
        return true;
    }
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return false;
    };
    if !state.config.trusted_proxies.trusts(peer.ip()) {
        return false;
    }
    // The proxy nearest to us appends last.
    let proto = parts
        .headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back();
    proto.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

/// The request's session.
pub struct Signed {
    pub session: Session,
    pub(super) secret: String,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let found = match cookie(&parts.headers, SESSION_COOKIE) {
            None => None,
            Some(secret) => match state.auth.session(secret).await {
                Ok(session) => session.map(|s| (s, secret.to_owned())),
                Err(err) => return Err(PageError::from(err).into_response()),
            },
        };
        match found {
            Some((session, secret)) => Ok(Self { session, secret }),
            None => Err(signed_out(parts, state)),
        }
    }
}

/// The answer to a request without a live session: 401 for the script and the live stream,
/// else a redirect to the sign-in page that comes back here. A stale cookie is deleted.
fn signed_out(parts: &Parts, state: &AppState) -> Response {
    let mut response =
        if parts.headers.contains_key(SCRIPT_HEADER) || parts.uri.path() == super::live::PATH {
            PageError::new(StatusCode::UNAUTHORIZED, "Sign in again.").into_response()
        } else {
            let back = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let target = if parts.method == axum::http::Method::GET && back != "/" {
                format!("/login?next={}", super::format::encode(back))
            } else {
                "/login".to_owned()
            };
            Redirect::to(&target).into_response()
        };
    if cookie(&parts.headers, SESSION_COOKIE).is_some() {
        let gone = set_cookie(SESSION_COOKIE, "", "/", 0, over_https(parts, state));
        response.headers_mut().append(header::SET_COOKIE, gone);
    }
    response
}

/// A form posted by a signed-in user from one of the dashboard's pages: the session, and
/// the form's fields once its `csrf` field has been checked against the session's token.
pub struct Posted {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(|rejection| {
                PageError::new(rejection.status(), rejection.body_text()).into_response()
            })?;
        let fields = Fields(pairs);
        match fields.get("csrf") {
            Some(sent) if signed.session.csrf_matches(sent) => Ok(Self { signed, fields }),
            _ => {
                tracing::warn!("a dashboard form was posted without its session's CSRF token");
                Err(PageError::forged().into_response())
            }
        }
    }
}

#[derive(Template)]
#[template(path = "login.html", config = "src/http/dashboard/askama.toml")]
struct LoginPage<'a> {
    css: &'static str,
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a path of this site, never another site (`//host`, a
/// scheme, a backslash that browsers read as a slash).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && !n.starts_with("/login") =>
        {
            n
        }
        _ => "/tunnels",
    }
}

/// The sign-in form, with a fresh double-submit CSRF cookie when the browser has none.
pub async fn login_form(
    Https(secure): Https,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let (token, fresh) = match cookie(&headers, SIGNIN_COOKIE) {
        Some(token) if token.len() >= 32 && token.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            (token.to_owned(), false)
        }
        _ => (random_secret(), true),
    };
    let page = LoginPage {
        css: assets::url("dashboard.css"),
        csrf: &token,
        next: safe_next(query.next.as_deref()),
        email: "",
        error: None,
    };
    let mut response = html(StatusCode::OK, &page);
    if fresh {
        let cookie = set_cookie(SIGNIN_COOKIE, &token, "/login", 3600, secure);
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Signs in: checks the double-submit token, then the password (rate limited like the API's
/// login), starts a session and goes where the user was going.
pub async fn login(
    State(state): State<AppState>,
    OriginIp(client): OriginIp,
    Https(secure): Https,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    let next = safe_next(fields.get("next")).to_owned();
    let sent = fields.get("csrf").unwrap_or_default();
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        tracing::warn!("a sign-in form was posted without its CSRF token");
        return PageError::forged().into_response();
    }
    let email = fields.get("email").unwrap_or_default();
    let password = fields.get("password").unwrap_or_default().to_owned();
    match state
        .auth
        .start_session(email, password, client.as_deref())
        .await
    {
        Ok(new) => {
            let max_age = (new.expires_at - chrono::Utc::now()).num_seconds().max(1);
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            let session = set_cookie(SESSION_COOKIE, &new.secret, "/", max_age, secure);
            headers.append(header::SET_COOKIE, session);
            let used = set_cookie(SIGNIN_COOKIE, "", "/login", 0, secure);
            headers.append(header::SET_COOKIE, used);
            response
        }
        Err(err @ (Error::Unauthorized(_) | Error::RateLimited { .. })) => {
            let error = PageError::from(err);
            let page = LoginPage {
                css: assets::url("dashboard.css"),
                csrf: expected,
                next: &next,
                email,
                error: Some(error.message().to_owned()),
            };
            let mut response = html(error.status(), &page);
            if let Some(secs) = error.retry_after() {
                let value = HeaderValue::from(secs);
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(err) => PageError::from(err).into_response(),
    }
}

/// Signs out: the session is deleted, and its cookie with it.
pub async fn logout(
    State(state): State<AppState>,
    Https(secure): Https,
    posted: Posted,
) -> Response {
    if let Err(err) = state.auth.end_session(&posted.signed.secret).await {
        return PageError::from(err).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    let gone = set_cookie(SESSION_COOKIE, "", "/", 0, secure);
    response.headers_mut().append(header::SET_COOKIE, gone);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_followed_after_signing_in() {
        assert_eq!(
            safe_next(Some("/tunnels?status=failed")),
            "/tunnels?status=failed"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/login",
            "x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/tunnels", "{bad}");
        }
        assert_eq!(safe_next(None), "/tunnels");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; warren_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "warren"), None);
    }
}
