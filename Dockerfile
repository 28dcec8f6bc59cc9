# Multi-stage build: compile with the full toolchain, run on a slim image.
# libsqlite3 and libpq are compiled into the binary (bundled), so the runtime
# image needs only OpenSSL (linked by libpq) and CA certificates (for S3).
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
# Base images are pinned by tag; Debian packages are not pinned to exact
# versions on purpose: bookworm's mirrors drop a version once its security
# update lands, so a pinned build would break exactly when it matters.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/kyc-api --create-home kyc
COPY --from=build /src/target/release/kyc-api /usr/local/bin/kyc-api
# Numeric, so that a runtime that refuses root (runAsNonRoot) can check it.
USER 10001
WORKDIR /var/lib/kyc-api
ENV KYC_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/kyc-api/kyc-api.db \
    KYC_STORAGE=local:/var/lib/kyc-api/files
EXPOSE 8080
# No curl in the image: the binary asks its own /ready.
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/kyc-api", "health"]
VOLUME ["/var/lib/kyc-api"]
ENTRYPOINT ["/usr/local/bin/kyc-api"]
CMD ["serve"]
