//! The web dashboard over plain HTTP: a visitor that keeps its cookies, follows no redirect
//! by itself, and reads forms' CSRF tokens out of the pages.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use super::TestApp;

/// One answer of a dashboard page.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// Where a redirect goes.
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// The `Set-Cookie` header that sets `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    /// The value of the first `csrf` field of the page's forms.
    pub fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in the page: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

/// A browser without a browser: cookies kept, redirects not followed.
pub struct Visitor {
    base: String,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    /// Extra headers sent with every request (a proxy's `X-Forwarded-Proto`, say).
    pub headers: Vec<(&'static str, String)>,
}

impl Visitor {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// A visitor signed in as `email`.
    pub async fn signed_in(app: &TestApp, email: &str) -> Self {
        let mut visitor = Self::new(app);
        let page = visitor.sign_in(email, super::PASSWORD).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "signing in: {}",
            page.body
        );
        visitor
    }

    /// Opens the sign-in form and posts it.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req.header(COOKIE, self.cookie_header());
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
        let response = req.send().await.expect("the dashboard answers");
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    /// Posts a form (`application/x-www-form-urlencoded`).
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Posts a form with this session's CSRF token, read from `from` (a page with a form).
    pub async fn post_from(&mut self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    /// A request of the page's script (which is answered 401 rather than redirected).
    pub async fn fetch(&mut self, path: &str) -> Page {
        let req = self
            .client
            .get(format!("{}{path}", self.base))
            .header("x-warren-dashboard", "1");
        self.send(req).await
    }

    /// Opens the live stream.
    pub async fn live(&self) -> reqwest::Response {
        self.client
            .get(format!("{}/live", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap()
    }
}

/// The tunnel's status as stored.
pub async fn tunnel_status(app: &TestApp, tunnel: &str) -> String {
    sqlx::query_scalar("SELECT status FROM tunnels WHERE id = $1::uuid")
        .bind(tunnel)
        .fetch_one(&app.db)
        .await
        .unwrap()
}
