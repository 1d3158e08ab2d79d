//! Warren behind PgBouncer. In session mode (a server connection per client connection, for
//! its life) everything works: registration's advisory lock, tunnels, batched heartbeats,
//! the reaper, and both LISTEN channels (token revocation, the event stream) across two
//! replicas. Transaction mode hands a client's statements to whichever server connection is
//! free, which breaks what sqlx and Warren keep per connection; the last tests show how.
mod common;

use std::time::Duration;

use common::pgbouncer::PgBouncer;
use common::*;
use reqwest::StatusCode;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use warren::db::embedded::EmbeddedPostgres;

const SOON: Duration = Duration::from_secs(10);

/// A cluster of the test's own and PgBouncer in front of it in `mode`; the URL of database
/// `warren` through PgBouncer and directly.
async fn bounced(
    name: &str,
    mode: &str,
    pool_size: u32,
) -> (
    EmbeddedPostgres,
    std::path::PathBuf,
    PgBouncer,
    String,
    String,
) {
    let dir = scratch_dir(name);
    let (pg, direct) = own_cluster(&dir).await;
    let password = reqwest::Url::parse(&direct)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    let bouncer = PgBouncer::start(pg.port(), &password, mode, pool_size).await;
    let via = direct.replace(&format!(":{}/", pg.port()), &format!(":{}/", bouncer.port));
    (pg, dir, bouncer, via, direct)
}

async fn remove(pg: EmbeddedPostgres, dir: std::path::PathBuf) {
    kill_cluster(pg).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn warren_works_behind_pgbouncer_in_session_mode_listen_channels_included() {
    let (pg, dir, bouncer, url, direct) = bounced("warren-pgbouncer", "session", 40).await;
    let a = TestApp::on_database(&url, |_| {}).await;
    let b = TestApp::on_database(&url, |_| {}).await;
    let db = sqlx::PgPool::connect(&direct).await.unwrap();

    // Registration (an advisory transaction lock), login, tokens, tunnels, heartbeats.
    let user = a.user().await;
    let token = a.api_token(&user, &["tunnels:heartbeat"]).await;
    let mut on_b = b.stream(&user.token, "", None).await;
    let ids = a.tunnel_ids(&user.token, 3).await;
    for id in &ids {
        let beat = json_of(b.heartbeat(&token, id).await, StatusCode::OK).await;
        assert_eq!(beat["status"], "active");
    }
    let beats = futures::future::join_all(ids.iter().map(|id| a.heartbeat(&token, id))).await;
    assert!(beats.iter().all(|r| r.status() == StatusCode::OK));
    let list = json_of(a.get("/v1/tunnels", &user.token).await, StatusCode::OK).await;
    assert_eq!(list.as_array().unwrap().len(), 3);

    // The event stream on B hears, through its LISTEN connection, what A committed.
    for _ in 0..3 {
        let created = on_b.event(SOON, "creations through A").await;
        assert_eq!(created.event.as_deref(), Some("tunnel.created.v1"));
    }

    // The reaper expires a lease run out.
    let gone = Uuid::parse_str(&ids[0]).unwrap();
    common::clock::age_tunnel(&db, gone, Duration::from_secs(120)).await;
    eventually(SOON, "the reaper to fail the run-out lease", || async {
        let t = json_of(
            a.get(&format!("/v1/tunnels/{gone}"), &user.token).await,
            StatusCode::OK,
        )
        .await;
        (t["status"] == "failed").then_some(()).ok_or(t)
    })
    .await;

    // Token revocation reaches B's cache through its LISTEN connection. First, B answers the
    // token from its cache, which it trusts only while it listens: with the token expired
    // behind its back in the table, B still accepts it.
    let hash: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE name = 'test'")
        .fetch_one(&db)
        .await
        .unwrap();
    let expire = |past: bool| {
        let sql = if past {
            "UPDATE api_tokens SET expires_at = now() - interval '1 day' WHERE token_hash = $1"
        } else {
            "UPDATE api_tokens SET expires_at = NULL WHERE token_hash = $1"
        };
        sqlx::query(sql).bind(hash.clone()).execute(&db)
    };
    eventually(SOON, "B to answer the token from its cache", || async {
        let cached = b.heartbeat(&token, &ids[1]).await.status();
        expire(true).await.unwrap();
        let from_cache = b.heartbeat(&token, &ids[1]).await.status();
        if cached == StatusCode::OK && from_cache == StatusCode::OK {
            Ok(())
        } else {
            expire(false).await.unwrap();
            Err(format!("{cached} then {from_cache}"))
        }
    })
    .await;
    let tokens = json_of(a.get("/v1/tokens", &user.token).await, StatusCode::OK).await;
    let token_id = tokens[0]["id"].as_str().unwrap();
    let revoked = a
        .delete(&format!("/v1/tokens/{token_id}"), &user.token)
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    eventually(
        SOON,
        "B to drop the revoked token from its cache",
        || async {
            let status = b.heartbeat(&token, &ids[1]).await.status();
            (status == StatusCode::UNAUTHORIZED)
                .then_some(())
                .ok_or(status)
        },
    )
    .await;

    a.stop().await;
    b.stop().await;
    db.close().await;
    assert!(!bouncer.log().contains("ERROR"), "{}", bouncer.log());
    drop(bouncer);
    remove(pg, dir).await;
}

#[tokio::test]
async fn in_transaction_mode_sqlx_prepared_statements_collide_on_a_shared_server_connection() {
    // One server connection for every client, as under load: sqlx names its prepared
    // statements per client connection (sqlx_s_1, …) and keeps them for the connection's
    // life, but the statement lives on the server connection, which the next client gets.
    let (pg, dir, bouncer, url, _) = bounced("warren-pgbouncer-tx", "transaction", 1).await;
    let mut first = PgConnection::connect(&url).await.unwrap();
    let mut second = PgConnection::connect(&url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT $1::int")
        .bind(1)
        .fetch_one(&mut first)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let err = sqlx::query_scalar::<_, i32>("SELECT $1::int + 1")
        .bind(1)
        .fetch_one(&mut second)
        .await
        .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("42P05"), "{err}"); // duplicate_prepared_statement
    eprintln!("transaction mode, second client: {err}");
    drop((first, second, bouncer));
    remove(pg, dir).await;
}

#[tokio::test]
async fn in_transaction_mode_a_listening_client_never_hears_a_notification() {
    // LISTEN is registered on whichever server connection ran it, which goes back to the
    // pool at once; the notification arrives there, for no client.
    let (pg, dir, bouncer, url, direct) =
        bounced("warren-pgbouncer-listen", "transaction", 2).await;
    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen(warren::events::hub::CHANNEL).await.unwrap();
    let mut notifier = PgConnection::connect(&direct).await.unwrap();
    sqlx::query("SELECT pg_notify($1, 'heard?')")
        .bind(warren::events::hub::CHANNEL)
        .execute(&mut notifier)
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await;
    assert!(
        !matches!(heard, Ok(Ok(Some(_)))),
        "the notification reached the client: {heard:?}"
    );
    // The same through a direct connection is heard at once.
    let mut direct_listener = PgListener::connect(&direct).await.unwrap();
    direct_listener
        .listen(warren::events::hub::CHANNEL)
        .await
        .unwrap();
    sqlx::query("SELECT pg_notify($1, 'heard?')")
        .bind(warren::events::hub::CHANNEL)
        .execute(&mut notifier)
        .await
        .unwrap();
    let heard = tokio::time::timeout(SOON, direct_listener.recv()).await;
    assert_eq!(heard.unwrap().unwrap().payload(), "heard?");
    drop((listener, direct_listener, notifier, bouncer));
    remove(pg, dir).await;
}
