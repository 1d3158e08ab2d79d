//! The user commands' config file: `{server, token}`, written by `warren login` with mode
//! 0600 at `$WARREN_CONFIG`, else `$XDG_CONFIG_HOME/warren/config.json`, else
//! `~/.config/warren/config.json`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StoredLogin {
    pub server: Option<String>,
    pub token: Option<String>,
}

/// Where the config file is, whether or not it exists.
pub fn path() -> anyhow::Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = var("WARREN_CONFIG") {
        return Ok(PathBuf::from(file));
    }
    let base = match (var("XDG_CONFIG_HOME"), var("HOME")) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => PathBuf::from(home).join(".config"),
        (None, None) => anyhow::bail!("set WARREN_CONFIG, XDG_CONFIG_HOME or HOME"),
    };
    Ok(base.join("warren").join("config.json"))
}

/// The stored login, or an empty one when there is no file.
pub fn load(file: &Path) -> anyhow::Result<StoredLogin> {
    match std::fs::read_to_string(file) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a warren config file", file.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(StoredLogin::default()),
        Err(err) => Err(err).with_context(|| format!("reading {}", file.display())),
    }
}

/// Writes the file readable by its owner only (it holds a token).
pub fn save(file: &Path, login: &StoredLogin) -> anyhow::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Written beside it and renamed: a reader never sees half a file, and the token never
    // sits in a file with looser permissions.
    let tmp = file.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        out.write_all(serde_json::to_string_pretty(login)?.as_bytes())?;
        out.write_all(b"\n")?;
        out.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    write().with_context(|| format!("writing {}", file.display()))
}
