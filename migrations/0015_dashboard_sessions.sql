-- Sign-in sessions of the web dashboard.
--
-- The browser holds a random secret in an HttpOnly cookie; only its SHA-256 is stored, so a
-- copy of this table cannot be replayed as a cookie. Each session carries its own CSRF token,
-- which every form of the dashboard sends back and every POST checks. A session ends at
-- `expires_at` (a fixed lifetime from sign-in) or when its user signs out (the row is
-- deleted); expired rows are swept by a background task.
CREATE TABLE dashboard_sessions (
    secret_hash bytea PRIMARY KEY CHECK (length(secret_hash) = 32),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);
CREATE INDEX dashboard_sessions_user_idx ON dashboard_sessions (user_id);
