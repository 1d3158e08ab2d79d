//! A real headless Chromium, driven through WebDriver (`chromedriver`, started here on a free
//! port; fantoccini talks to it). One browser at a time in a test process: the machine is
//! small and each has a fresh profile.
//!
//! Without Chromium and chromedriver on the machine, [`Browser::start`] prints a notice and
//! answers `None` (the test returns), unless `WARREN_REQUIRE_BROWSER=1`, which makes their
//! absence a failure (CI installs them and sets it). `CHROME_BIN` and `CHROMEDRIVER` name
//! the binaries when they are not on the `PATH`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Map, Value};
use tokio::sync::{Mutex, MutexGuard};

use super::{eventually, free_port, scratch_dir};

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Chromium's flags: headless, no sandbox (tests may run as root), nothing that reaches out
/// to the network (there is none beyond loopback).
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

/// The first of `names` that is an executable file on the `PATH`, or `env`'s value.
fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path)).filter(|p| is_executable(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Browser {
    /// A fresh browser, or `None` (after a notice) when none is installed and none is required.
    pub async fn start() -> Option<Self> {
        let chrome = find(
            "CHROME_BIN",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        );
        let driver = find("CHROMEDRIVER", &["chromedriver"]);
        let (Some(chrome), Some(driver)) = (chrome, driver) else {
            let required = std::env::var("WARREN_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "WARREN_REQUIRE_BROWSER=1 but chromium and chromedriver are not both installed \
                 (apt-get install chromium chromium-driver)"
            );
            // Straight to stderr, past the test harness's capture, so that it is seen.
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: skipping a browser test of the dashboard: chromium and chromedriver are \
                 not installed (apt-get install chromium chromium-driver; set \
                 WARREN_REQUIRE_BROWSER=1 to make this a failure)"
            );
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let profile = scratch_dir("warren-chromium");
        // Its own process group, so that the browsers it starts go with it.
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", driver.display()));
        let address = format!("127.0.0.1:{port}");
        eventually(Duration::from_secs(20), "chromedriver listens", || async {
            tokio::net::TcpStream::connect(&address).await.ok()
        })
        .await;
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push("--window-size=1280,1000".to_owned());
        let mut capabilities = Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chrome, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://{address}"))
            .await
            .expect("a WebDriver session");
        Some(Self {
            client,
            driver: child,
            profile,
            _turn: turn,
        })
    }

    /// Ends the session (Chromium exits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The path (and query) of the page the browser shows.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The text of the first element `css` matches, once there is one (found again if the
    /// page changed under it).
    pub async fn text(&self, css: &str) -> String {
        let what = format!("the text of {css}");
        eventually(Duration::from_secs(5), &what, || async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.text().await.ok()
        })
        .await
    }

    /// The first element `css` matches, waiting up to 5 s for it.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let what = format!("an element matching {css}");
        eventually(Duration::from_secs(5), &what, || async {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// Waits up to `limit` for the attribute `attr` of the element `css` to be `value`.
    pub async fn wait_attr(&self, limit: Duration, css: &str, attr: &str, value: &str) {
        let what = format!("{css} with {attr}={value}");
        eventually(limit, &what, || async {
            let element = self
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?;
            match element.attr(attr).await.map_err(|e| e.to_string())? {
                Some(seen) if seen == value => Ok(()),
                seen => Err(format!("{seen:?}")),
            }
        })
        .await
    }

    /// Types `value` into the field `css` matches, replacing what it held.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks the first element `css` matches, once there is one.
    pub async fn click(&self, css: &str) {
        let what = format!("a click on {css}");
        eventually(Duration::from_secs(5), &what, || async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.click().await.ok()
        })
        .await
    }

    /// Signs in through the form (the browser is on the sign-in page or is sent there).
    pub async fn sign_in(&self, base: &str, email: &str) {
        if !self.path().await.starts_with("/login") {
            self.goto(&format!("{base}/login")).await;
        }
        self.fill("#email", email).await;
        self.fill("#password", super::PASSWORD).await;
        self.click("button[type=submit]").await;
        eventually(Duration::from_secs(5), "signed in", || async {
            let path = self.path().await;
            (!path.starts_with("/login")).then_some(())
        })
        .await;
    }

    /// Runs `script` in the page; its JSON result.
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group holds chromedriver and whatever Chromium it started.
        let group = self.driver.id() as i32;
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
