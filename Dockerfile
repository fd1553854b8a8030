# syntax=docker/dockerfile:1
# The ivy-webhook-operator image: one static (musl) binary and the CA certificates, nothing
# else, running as the unprivileged user 65532.
#
#   docker build -t ivy-webhook-operator:dev .
#   docker run --rm ivy-webhook-operator:dev crd
#
# The image is built for the platform of the build (linux/amd64 or linux/arm64); use
# `docker buildx build --platform linux/amd64,linux/arm64` for both.

# Keep in step with the toolchain the project is developed with (Cargo.toml rust-version is
# the minimum).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# musl-tools: a C compiler for the musl target (ring's C and assembly).
# ca-certificates: the CA bundle copied into the final image.
# Not pinned (DL3008): Debian drops superseded versions from its mirrors, so a pin would break
# the build at the next security update; this stage is not shipped.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# x86_64-unknown-linux-musl or aarch64-unknown-linux-musl, matching the build platform.
RUN echo "$(uname -m)-unknown-linux-musl" > /rust-target \
    && rustup target add "$(cat /rust-target)"
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The registry and target caches survive between builds (BuildKit); --locked builds exactly
# the committed Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    target="$(cat /rust-target)" \
    && cargo build --release --locked --target "$target" --bin ivy-webhook-operator \
    && install -D -m 0755 "target/$target/release/ivy-webhook-operator" /out/ivy-webhook-operator

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ivy-webhook-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages Ivy webhook subscriptions and their signing secrets" \
      org.opencontainers.image.source="https://github.com/ivy-webhook-operator/ivy-webhook-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/ivy-webhook-operator /ivy-webhook-operator
# Numeric, so that Kubernetes can check runAsNonRoot without an /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/ivy-webhook-operator"]
CMD ["run"]
