//! An endpoint's fields as a caller sends them, checked before anything is stored.

use crate::error::Error;
use crate::events::EventType;

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description.
pub const MAX_DESCRIPTION_LEN: usize = 500;

/// An absolute `http` or `https` URL with a host, no credentials, at most
/// [`MAX_URL_LEN`] characters; as given (trimmed).
pub fn url(raw: &str) -> Result<String, Error> {
    let raw = raw.trim();
    let bad = |why: &str| Error::invalid("url", format!("url {why}; got `{}`", shorten(raw)));
    if raw.is_empty() {
        return Err(Error::invalid("url", "url must not be empty"));
    }
    if raw.chars().count() > MAX_URL_LEN {
        return Err(Error::invalid(
            "url",
            format!("url must be at most {MAX_URL_LEN} characters"),
        ));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let parsed = reqwest::Url::parse(raw).map_err(|_| bad("must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    // A URL parser forgives `http:///x` and `http:x` by taking the path as the
    // host; an address written that way is a mistake, so the host must follow
    // `scheme://` as written.
    let written_host = raw
        .get(parsed.scheme().len()..)
        .and_then(|rest| rest.strip_prefix("://"))
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| !matches!(c, '/' | '\\' | '?' | '#'));
    match parsed.host_str() {
        Some(host) if written_host && !host.is_empty() => {}
        _ => return Err(bad("must name a host")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    Ok(raw.to_owned())
}

/// Event type names; empty means every type (`None`).
pub fn types(raw: Option<Vec<String>>) -> Result<Option<Vec<String>>, Error> {
    let Some(raw) = raw.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut types = Vec::with_capacity(raw.len());
    for name in raw {
        let Some(kind) = EventType::parse(name.trim()) else {
            let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(Error::invalid(
                "types",
                format!(
                    "unknown event type `{}`; known types: {}",
                    shorten(&name),
                    known.join(", ")
                ),
            ));
        };
        let name = kind.as_str().to_owned();
        if !types.contains(&name) {
            types.push(name);
        }
    }
    Ok(Some(types))
}

/// At most [`MAX_DESCRIPTION_LEN`] characters, no control characters; trimmed.
pub fn description(raw: &str) -> Result<String, Error> {
    let raw = raw.trim();
    if raw.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(Error::invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid(
            "description",
            "description must not contain control characters",
        ));
    }
    Ok(raw.to_owned())
}

/// A value to quote back in an error, cut short and without control characters.
fn shorten(raw: &str) -> String {
    let mut out: String = raw.chars().filter(|c| !c.is_control()).take(100).collect();
    if raw.chars().count() > 100 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(err: Error) -> String {
        match err {
            Error::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        assert_eq!(
            url(" https://example.com/hook?x=1 ").unwrap(),
            "https://example.com/hook?x=1"
        );
        assert!(url("http://127.0.0.1:9/").is_ok());
        for bad in [
            "",
            "example.com/hook",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://",
            "http:///path",
            "http:example.com/hook",
            "https:\\\\example.com/",
            "http://?x",
            "http:x/?u=http://y",
            "https://user:pw@example.com/",
            "gopher://x",
            "https://example.com/\u{0}",
            "https://example.com/a b",
        ] {
            assert_eq!(field(url(bad).unwrap_err()), "url", "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(field(url(&long).unwrap_err()), "url");
    }

    #[test]
    fn types_must_be_known_and_empty_means_all() {
        assert_eq!(types(None).unwrap(), None);
        assert_eq!(types(Some(vec![])).unwrap(), None);
        let t = types(Some(vec![
            "tunnel.failed.v1".into(),
            "tunnel.failed.v1".into(),
        ]))
        .unwrap();
        assert_eq!(t, Some(vec!["tunnel.failed.v1".to_owned()]));
        assert_eq!(
            field(types(Some(vec!["tunnel.failed".into()])).unwrap_err()),
            "types"
        );
    }

    #[test]
    fn descriptions_are_short_plain_text() {
        assert_eq!(description("  ops ").unwrap(), "ops");
        assert!(description(&"x".repeat(MAX_DESCRIPTION_LEN + 1)).is_err());
        assert!(description("a\u{0}b").is_err());
    }
}
