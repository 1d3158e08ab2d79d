# syntax=docker/dockerfile:1
# Build: queries are checked against the committed .sqlx data, so no database is needed.
FROM rust:1-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY Cargo.toml Cargo.lock build.rs ./
COPY .sqlx .sqlx
COPY migrations migrations
COPY src src
RUN cargo build --release --locked --bin warren \
    && strip target/release/warren

# Run: a small Debian with the binary, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/warren --create-home warren
COPY --from=build /src/target/release/warren /usr/local/bin/warren
USER warren
WORKDIR /var/lib/warren
ENV WARREN_LISTEN=0.0.0.0:8080 \
    WARREN_DATA_DIR=/var/lib/warren
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["warren"]
CMD ["serve"]
