//! The user commands: `warren login`, `warren tunnels list|stop`, `warren tokens create`.
//! Tables by default, the server's JSON with `--json`; errors are the server's `detail`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use super::config_file::{self, StoredLogin};
use super::{LoginArgs, ServerArgs, TokensCommand, TunnelsCommand};
use crate::auth::Scope;
use crate::remote::Remote;

/// The name of the API token `warren login` creates.
pub const CLI_TOKEN_NAME: &str = "warren cli";

/// The server and token: flags or environment first, then the config file.
pub(super) fn connect(args: &ServerArgs) -> anyhow::Result<Remote> {
    let file = config_file::path()?;
    let stored = if args.server.is_some() && args.token.is_some() {
        StoredLogin::default()
    } else {
        config_file::load(&file)?
    };
    let hint = "run `warren login`, or give --server and --token (WARREN_SERVER, WARREN_TOKEN)";
    let server = args
        .server
        .clone()
        .or(stored.server)
        .with_context(|| format!("no server configured: {hint}"))?;
    let token = args
        .token
        .clone()
        .or(stored.token)
        .with_context(|| format!("no token configured: {hint}"))?;
    Remote::new(&server, Some(&token))
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let password = match args.password.filter(|p| !p.is_empty()) {
        Some(p) => p,
        None => read_password()?,
    };
    let anonymous = Remote::new(&args.server, None)?;
    let body = json!({ "email": args.email, "password": password });
    let session = anonymous
        .request(Method::POST, "/v1/auth/login", Some(&body))
        .await?
        .ok()?;
    let access = session["accessToken"]
        .as_str()
        .context("the server's login answer has no accessToken")?;
    // Access tokens last minutes; keep a long-lived API token instead. It holds every scope
    // because `warren tokens create` can grant only scopes its creator holds.
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let body = json!({ "name": CLI_TOKEN_NAME, "scopes": scopes });
    let created = Remote::new(&args.server, Some(access))?
        .request(Method::POST, "/v1/tokens", Some(&body))
        .await?
        .ok()?;
    let token = created["token"]
        .as_str()
        .context("the server's token answer has no token")?;
    let file = config_file::path()?;
    let stored = StoredLogin {
        server: Some(anonymous.base().to_owned()),
        token: Some(token.to_owned()),
    };
    config_file::save(&file, &stored)?;
    println!(
        "Logged in to {} as {}; token saved in {}",
        anonymous.base(),
        args.email,
        file.display()
    );
    Ok(())
}

/// One line from stdin, without echo when it is a terminal.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let saved = if terminal {
        eprint!("Password: ");
        std::io::stderr().flush()?;
        hide_input(&stdin)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &saved);
        eprintln!();
    }
    read.context("reading the password")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password given (--password, WARREN_PASSWORD or stdin)");
    }
    Ok(password)
}

/// Turns terminal echo off; the settings to restore.
fn hide_input(stdin: &std::io::Stdin) -> Option<nix::sys::termios::Termios> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let saved = tcgetattr(stdin).ok()?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(stdin, SetArg::TCSANOW, &quiet).ok()?;
    Some(saved)
}

pub async fn tunnels(args: ServerArgs, command: TunnelsCommand) -> anyhow::Result<()> {
    let remote = connect(&args)?;
    match command {
        TunnelsCommand::List {
            include_inactive,
            json,
        } => {
            let tunnels = list_tunnels(&remote, include_inactive).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tunnels)?);
            } else {
                print!("{}", tunnel_table(&tunnels));
            }
        }
        TunnelsCommand::Stop { id } => {
            let body = json!({ "status": "stopping" });
            let tunnel = remote
                .request(Method::PATCH, &format!("/v1/tunnels/{id}"), Some(&body))
                .await?
                .ok()?;
            println!(
                "tunnel {} ({}) is {}",
                text(&tunnel["id"]),
                text(&tunnel["slug"]),
                text(&tunnel["status"])
            );
        }
    }
    Ok(())
}

/// Every page of `GET /v1/tunnels`, following `Link: <…>; rel="next"`.
async fn list_tunnels(remote: &Remote, include_inactive: bool) -> anyhow::Result<Vec<Value>> {
    let mut path = format!("/v1/tunnels?includeInactive={include_inactive}");
    let mut all = Vec::new();
    loop {
        let answer = remote.request(Method::GET, &path, None).await?;
        let next = answer
            .headers
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        match answer.ok()? {
            Value::Array(page) => all.extend(page),
            other => anyhow::bail!("the server answered a list with {other}"),
        }
        match next {
            Some(next) => path = next,
            None => return Ok(all),
        }
    }
}

/// The target of `rel="next"` in a Link header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Aligned columns with a header row.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn tunnel_table(tunnels: &[Value]) -> String {
    if tunnels.is_empty() {
        return "no tunnels\n".to_owned();
    }
    let rows: Vec<Vec<String>> = tunnels
        .iter()
        .map(|t| {
            vec![
                text(&t["id"]),
                text(&t["slug"]),
                text(&t["status"]),
                text(&t["requestedPort"]),
                text(&t["hostname"]),
                text(&t["lease"]["lastHeartbeatAt"]),
                text(&t["lastError"]),
            ]
        })
        .collect();
    let header = [
        "ID",
        "SLUG",
        "STATUS",
        "PORT",
        "HOSTNAME",
        "LAST HEARTBEAT",
        "LAST ERROR",
    ];
    table(&header, &rows)
}

pub async fn tokens(args: ServerArgs, command: TokensCommand) -> anyhow::Result<()> {
    let remote = connect(&args)?;
    let TokensCommand::Create {
        name,
        scopes,
        expires_in_secs,
        json,
    } = command;
    let mut body = json!({ "name": name, "scopes": scopes });
    if let Some(secs) = expires_in_secs {
        body["expiresInSecs"] = json!(secs);
    }
    let created = remote
        .request(Method::POST, "/v1/tokens", Some(&body))
        .await?
        .ok()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&created)?);
        return Ok(());
    }
    let scopes: Vec<String> = created["scopes"]
        .as_array()
        .map(|s| s.iter().map(text).collect())
        .unwrap_or_default();
    let expires = match &created["expiresAt"] {
        Value::Null => "never".to_owned(),
        other => text(other),
    };
    println!("token    {}", text(&created["token"]));
    println!("id       {}", text(&created["id"]));
    println!("name     {}", text(&created["name"]));
    println!("scopes   {}", scopes.join(", "));
    println!("expires  {expires}");
    eprintln!("The token is shown only this once: store it now.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec!["a".into(), "long value".into()],
            vec!["bbb".into(), "x".into()],
        ];
        assert_eq!(
            table(&["K", "V"], &rows),
            "K    V\na    long value\nbbb  x\n"
        );
    }

    #[test]
    fn the_next_link_is_found() {
        let header = "</v1/tunnels?limit=2&after=1_ab>; rel=\"next\"";
        assert_eq!(
            next_link(header).as_deref(),
            Some("/v1/tunnels?limit=2&after=1_ab")
        );
        assert_eq!(next_link("<x>; rel=\"prev\""), None);
    }
}
