//! What every page shares: the layout around it, rendering a template into an answer, the
//! error page, and the fields of a posted form.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::session::Signed;
use super::{assets, NAV};
use crate::db::gate::Unreachable;
use crate::error::Error;
use crate::http::error::status_of;

/// The frame of a signed-in page: title, navigation, who is signed in, and the CSRF token
/// the sign-out form (and every other form of the page) sends back.
pub struct Layout {
    pub title: String,
    pub current: &'static str,
    pub email: String,
    pub csrf: String,
}

/// One link of the navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

impl Layout {
    pub fn new(signed: &Signed, current: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            current,
            email: signed.session.email.clone(),
            csrf: signed.session.csrf_token.clone(),
        }
    }

    pub fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
            .map(|(key, href, label)| NavItem {
                href,
                label,
                current: *key == self.current,
            })
            .collect()
    }

    pub fn css(&self) -> &'static str {
        assets::url("dashboard.css")
    }

    pub fn js(&self) -> &'static str {
        assets::url("dashboard.js")
    }
}

/// A rendered template as an HTML answer.
pub fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => {
            let content_type = HeaderValue::from_static("text/html; charset=utf-8");
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "a dashboard page failed to render");
            let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
            let body = "an internal error occurred";
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html", config = "src/http/dashboard/askama.toml")]
struct ErrorTemplate<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
    css: &'static str,
}

/// A page's failure, shown as an error page with the status the API would answer.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    unreachable: bool,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            unreachable: false,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// A posted form without this session's CSRF token.
    pub fn forged() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form did not come from this page of Warren, or it has expired. \
             Go back, reload the page and try again.",
        )
    }
}

impl From<Error> for PageError {
    fn from(err: Error) -> Self {
        let status = status_of(&err);
        let message = match &err {
            Error::Internal(inner) => {
                tracing::error!(error = ?inner, "a dashboard request failed");
                "An internal error occurred.".to_owned()
            }
            Error::Unavailable(inner) => {
                tracing::warn!(error = %inner, "database unavailable");
                "The database is unavailable; try again shortly.".to_owned()
            }
            other => sentence(&other.to_string()),
        };
        Self {
            status,
            message,
            retry_after: match err {
                Error::RateLimited { retry_after } => Some(retry_after),
                _ => None,
            },
            unreachable: matches!(err, Error::Unavailable(_)),
        }
    }
}

/// A domain message as a sentence: capitalised, with a full stop.
pub fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorTemplate {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
            css: assets::url("dashboard.css"),
        };
        let mut response = html(self.status, &page);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.unreachable {
            response.extensions_mut().insert(Unreachable);
        }
        response
    }
}

/// An option of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// Options of `(value, label)`, the one equal to `current` selected.
pub fn choices(options: &[(&str, &str)], current: Option<&str>) -> Vec<Choice> {
    let current = current.unwrap_or_default();
    options
        .iter()
        .map(|(value, label)| Choice {
            value: (*value).to_owned(),
            label: (*label).to_owned(),
            selected: *value == current,
        })
        .collect()
}

/// The fields of a posted form, in order (a name may repeat, as checkboxes do).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_sentences() {
        assert_eq!(sentence("tunnel not found"), "Tunnel not found.");
        assert_eq!(sentence("done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
