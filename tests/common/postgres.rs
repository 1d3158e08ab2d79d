//! Where the tests' PostgreSQL comes from, in this order: `DATABASE_URL` (a server the tests
//! may create databases on); else a throwaway cluster started from the PostgreSQL binaries on
//! the machine; else a throwaway PostgreSQL container (testcontainers, which needs a Docker
//! engine). A cluster or container started here lives until the test process exits.

use std::path::PathBuf;
use std::sync::Mutex;

use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use warren::db::embedded::{self, EmbeddedPostgres};

/// The PostgreSQL the tests run against.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// `DATABASE_URL`.
    Url(String),
    /// A cluster of the PostgreSQL binaries found on the machine.
    Binaries,
    /// A container started with testcontainers.
    Container,
}

/// The choice, given `DATABASE_URL` (an empty one counts as unset) and whether the PostgreSQL
/// server binaries are on the machine.
pub fn choose(database_url: Option<&str>, binaries: bool) -> Source {
    match database_url {
        Some(url) if !url.is_empty() => Source::Url(url.to_owned()),
        _ if binaries => Source::Binaries,
        _ => Source::Container,
    }
}

/// The choice for this process: its environment and the machine (the binaries are looked for
/// where `warren serve` looks for them).
pub fn source() -> Source {
    let url = std::env::var("DATABASE_URL").ok();
    choose(url.as_deref(), embedded::find_bin_dir().is_some())
}

/// Starts the server `source` names, if it is not running already; a URL with `{db}` where
/// the database name goes.
pub fn start(source: Source) -> String {
    match source {
        Source::Url(url) => replace_database(&url, "{db}"),
        Source::Binaries => start_cluster(),
        Source::Container => start_container(),
    }
}

static CLUSTER: Mutex<Option<(EmbeddedPostgres, PathBuf)>> = Mutex::new(None);

extern "C" fn stop_cluster() {
    if let Ok(mut guard) = CLUSTER.lock() {
        if let Some((pg, dir)) = guard.take() {
            let _ = pg.kill();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn start_cluster() -> String {
    let dir = super::scratch_dir("warren-test-pg");
    let pg = EmbeddedPostgres::start(&dir).unwrap_or_else(|err| {
        panic!("the tests need PostgreSQL: set DATABASE_URL or install it ({err:#})")
    });
    let pattern = pg.url("{db}");
    *CLUSTER.lock().unwrap() = Some((pg, dir));
    unsafe { libc::atexit(stop_cluster) };
    pattern
}

/// The container, with the runtime its Docker client was made on (and removes it with).
static CONTAINER: Mutex<Option<(tokio::runtime::Runtime, ContainerAsync<Postgres>)>> =
    Mutex::new(None);

extern "C" fn remove_container() {
    if let Ok(mut guard) = CONTAINER.lock() {
        if let Some((runtime, container)) = guard.take() {
            let _ = runtime.block_on(container.rm());
        }
    }
}

fn start_container() -> String {
    // On a thread and runtime of its own: the caller may be inside a test's runtime.
    let (runtime, container, pattern) = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (container, pattern) = runtime.block_on(async {
            let container = Postgres::default()
                .with_tag("15-alpine")
                .with_cmd(["postgres", "-c", "max_connections=200"])
                .start()
                .await
                .unwrap_or_else(|err| {
                    panic!(
                        "the tests need PostgreSQL: set DATABASE_URL, install it, or make a \
                         Docker engine available for a container ({err})"
                    )
                });
            let host = container.get_host().await.unwrap();
            let port = container.get_host_port_ipv4(5432).await.unwrap();
            let pattern = format!("postgres://postgres:postgres@{host}:{port}/{{db}}");
            (container, pattern)
        });
        (runtime, container, pattern)
    })
    .join()
    .expect("starting a PostgreSQL container");
    *CONTAINER.lock().unwrap() = Some((runtime, container));
    unsafe { libc::atexit(remove_container) };
    pattern
}

/// `url` with its database name replaced by `db` (its query kept).
fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > base.find("//").map_or(0, |j| j + 1) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}
