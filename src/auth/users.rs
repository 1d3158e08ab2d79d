//! Accounts and users.

use sqlx::PgConnection;
use uuid::Uuid;

pub struct NewUser {
    pub id: Uuid,
    pub account_id: Uuid,
    pub email: String,
}

pub struct UserCredentials {
    pub id: Uuid,
    pub account_id: Uuid,
    pub password_hash: String,
}

/// Serialises registrations, so "is this the first user?" cannot be answered twice with yes.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn lock_registrations(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('warren.register'))")
        .execute(conn)
        .await?;
    Ok(())
}

#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn any_user_exists(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let row = sqlx::query!(r#"SELECT EXISTS (SELECT 1 FROM users) AS "exists!""#)
        .fetch_one(conn)
        .await?;
    Ok(row.exists)
}

/// Creates a new account with this user as its first member.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn create_with_account(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
) -> Result<NewUser, sqlx::Error> {
    let account_id = Uuid::new_v4();
    let id = Uuid::new_v4();
    sqlx::query!("INSERT INTO accounts (id) VALUES ($1)", account_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO users (id, account_id, email, password_hash) VALUES ($1, $2, $3, $4)",
        id,
        account_id,
        email,
        password_hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(NewUser {
        id,
        account_id,
        email: email.to_owned(),
    })
}

#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn credentials_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<UserCredentials>, sqlx::Error> {
    // No registered email holds a control character, and PostgreSQL text cannot even hold
    // NUL: such an email is nobody's (the caller still spends the password check).
    if email.contains('\0') {
        return Ok(None);
    }
    sqlx::query_as!(
        UserCredentials,
        "SELECT id, account_id, password_hash FROM users WHERE lower(email) = lower($1)",
        email
    )
    .fetch_optional(conn)
    .await
}
