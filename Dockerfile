# syntax=docker/dockerfile:1
# The shipgate image: the runner as the entrypoint, the project's migrations beside it.
#
#   docker build -t shipgate .
#   docker run --rm -e DATABASE_URL=postgres://... -e MIGRATION_TYPE=master shipgate
#
# With no command it runs `shipgate migrate`, which reads MIGRATION_TYPE (master, tenants,
# provision, rollback-master, rollback-tenants), so `aws ecs run-task` needs no command
# override. The migrations are at /app/migrations (SHIPGATE_SOURCE points there; set it to
# read another folder). Nothing is written outside /tmp: a read-only root filesystem and
# every capability dropped are fine (aws/migration-task.json sets both).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin shipgate \
    && cp target/release/shipgate /usr/local/bin/shipgate

# glibc, libgcc and CA certificates, no shell, and the `nonroot` user (UID 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="shipgate" \
      org.opencontainers.image.description="The deploy gate for AWS ECS/Fargate: PostgreSQL migrations that gate the rollout" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /usr/local/bin/shipgate /usr/local/bin/shipgate
WORKDIR /app
COPY shipgate.toml /app/shipgate.toml
COPY migrations /app/migrations
ENV SHIPGATE_SOURCE=/app/migrations \
    TMPDIR=/tmp
USER 65532:65532
ENTRYPOINT ["shipgate"]
CMD ["migrate"]
