//! The test harness's own choices, which no other test would notice going wrong.
mod common;

use common::postgres::{choose, Source};

#[test]
fn database_url_wins_over_everything_else() {
    let url = "postgres://user:secret@db.internal:5432/app?sslmode=disable";
    assert_eq!(choose(Some(url), true), Source::Url(url.to_owned()));
    assert_eq!(choose(Some(url), false), Source::Url(url.to_owned()));
}

#[test]
fn without_database_url_the_machines_binaries_come_next() {
    assert_eq!(choose(None, true), Source::Binaries);
    // An empty DATABASE_URL counts as unset, as it does for `warren serve`.
    assert_eq!(choose(Some(""), true), Source::Binaries);
}

#[test]
fn a_container_only_when_there_is_neither() {
    assert_eq!(choose(None, false), Source::Container);
    assert_eq!(choose(Some(""), false), Source::Container);
}
