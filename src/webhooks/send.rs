//! One attempt to deliver: resolve the endpoint's host, check the address against the
//! policy ([`super::address`]), connect to exactly that address (so a DNS answer that
//! changes between the check and the connection cannot swap it), POST the signed body, and
//! read at most [`BODY_KEPT`] bytes of the answer. No redirects are followed, no proxy is
//! used, and nothing of the secret or the signature is logged.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::Url;

use super::address;

/// How much of an answer's body is read and kept.
pub const BODY_KEPT: usize = 4096;
/// How much of an error's text is kept.
pub const ERROR_KEPT: usize = 1000;

/// A message to send.
pub struct Message<'a> {
    pub url: &'a str,
    pub id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// What came of an attempt.
#[derive(Debug, Default)]
pub struct Attempt {
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
    pub body: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(error: String, started: Instant) -> Self {
        Self {
            error: Some(cap(&error, ERROR_KEPT)),
            latency: started.elapsed(),
            ..Self::default()
        }
    }
}

/// Sends `message`: never an `Err`, every failure is an [`Attempt`] with its error.
pub async fn send(message: &Message<'_>, allow_private: bool, timeout: Duration) -> Attempt {
    let started = Instant::now();
    let target = match tokio::time::timeout(timeout, resolve(message.url, allow_private)).await {
        Ok(Ok(target)) => target,
        Ok(Err(error)) => return Attempt::failed(error, started),
        Err(_) => return Attempt::failed("resolving the host timed out".into(), started),
    };
    let mut client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("Warren-Webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = &target.domain {
        client = client.resolve(host, target.addr);
    }
    let client = match client.build() {
        Ok(client) => client,
        Err(err) => return Attempt::failed(describe(&err), started),
    };
    let request = client
        .post(target.url)
        .header("content-type", "application/json")
        .header("webhook-id", message.id)
        .header("webhook-timestamp", message.timestamp.to_string())
        .header("webhook-signature", message.signature)
        .body(message.body.to_vec());
    let exchange = async {
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < BODY_KEPT {
            match response.chunk().await? {
                Some(chunk) => kept.extend_from_slice(&chunk),
                None => break,
            }
        }
        kept.truncate(BODY_KEPT);
        Ok::<_, reqwest::Error>((status, kept))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((status, kept))) => {
            let text = String::from_utf8_lossy(&kept).replace('\0', "");
            let error = (!(200..300).contains(&status)).then(|| match status {
                300..=399 => format!("the endpoint answered {status} (redirects are not followed)"),
                _ => format!("the endpoint answered {status}"),
            });
            Attempt {
                status: Some(status),
                latency: started.elapsed(),
                error,
                body: (!text.is_empty()).then(|| cap(&text, BODY_KEPT)),
            }
        }
        Ok(Err(err)) => Attempt::failed(describe(&err), started),
        Err(_) => Attempt::failed(format!("no answer within {} s", timeout.as_secs()), started),
    }
}

/// Where to connect: the URL, the address checked, and the host name to pin it for.
struct Target {
    url: Url,
    domain: Option<String>,
    addr: SocketAddr,
}

/// The URL's host resolved, and the first of its addresses the policy allows.
async fn resolve(raw: &str, allow_private: bool) -> Result<Target, String> {
    let url = Url::parse(raw).map_err(|err| format!("the URL is invalid: {err}"))?;
    let port = url
        .port_or_known_default()
        .ok_or("the URL has no port and no known default")?;
    let host = url.host_str().ok_or("the URL has no host")?.to_owned();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let (domain, addrs): (Option<String>, Vec<IpAddr>) = match literal.parse::<IpAddr>() {
        Ok(ip) => (None, vec![ip]),
        Err(_) => {
            let found = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|err| format!("cannot resolve {host}: {err}"))?;
            (Some(host.clone()), found.map(|a| a.ip()).collect())
        }
    };
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    let chosen = if allow_private {
        addrs.first().copied()
    } else {
        addrs
            .iter()
            .copied()
            .find(|ip| address::refused(*ip).is_none())
    };
    let Some(ip) = chosen else {
        let why: Vec<String> = addrs
            .iter()
            .map(|ip| format!("{ip} ({})", address::refused(*ip).unwrap_or("allowed")))
            .collect();
        return Err(format!(
            "refused: {host} resolves only to addresses webhooks may not reach: {}; \
             WARREN_WEBHOOK_ALLOW_PRIVATE=true allows them",
            why.join(", ")
        ));
    };
    Ok(Target {
        url,
        domain,
        addr: SocketAddr::new(ip, port),
    })
}

/// A transport error, with its causes, without the URL.
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "the request timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let err = resolve("http://127.0.0.1:9/x", false).await.err().unwrap();
        assert!(err.contains("loopback"), "{err}");
        let err = resolve("http://[::ffff:169.254.169.254]/", false)
            .await
            .err()
            .unwrap();
        assert!(err.contains("metadata"), "{err}");
        let ok = resolve("http://127.0.0.1:9/x", true).await.unwrap();
        assert_eq!(ok.addr, "127.0.0.1:9".parse().unwrap());
        let ok = resolve("http://localhost:9/x", true).await.unwrap();
        assert_eq!(ok.domain.as_deref(), Some("localhost"));
        assert!(resolve("http://localhost:9/x", false).await.is_err());
    }

    #[test]
    fn caps_cut_at_character_boundaries() {
        assert_eq!(cap("héllo", 2), "h");
        assert_eq!(cap("abc", 10), "abc");
    }
}
