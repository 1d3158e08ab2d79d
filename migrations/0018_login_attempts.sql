-- Login attempts, counted in the database so that the limit holds across replicas.
--
-- Each key (the SHA-256 of `ip:<address>` or `email:<address>`: any text a client sends,
-- NUL included, fits, and no address is stored) has a fixed window of one minute: the first
-- attempt after a window has ended starts a new one. Before, each process counted its own
-- attempts in memory, so N replicas behind a balancer allowed N times the limit.
--
-- UNLOGGED: the counters are not worth a WAL write per login, and losing them in a crash
-- (or a failover: unlogged tables start empty on a promoted standby) only gives every
-- client a fresh minute.
CREATE UNLOGGED TABLE login_attempts (
    key          bytea PRIMARY KEY,
    window_start timestamptz NOT NULL,
    attempts     integer NOT NULL
);
