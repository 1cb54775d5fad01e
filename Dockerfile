# syntax=docker/dockerfile:1
#
# The eventer image: the `eventer` binary, built with the `dist` profile (whole-program
# optimisation, see Cargo.toml), on a distroless base.
#
#   docker build -t eventer:dev .
#   docker run --rm eventer:dev --help
#
# FEATURES picks the binary's Cargo features (eventer-cli's; `default` is every source and
# sink). A binary for one job links less code and idles lower, e.g. for an SLS archive
# (9.4-9.7 MiB idle RSS against 11.3-11.6 MiB with every sink):
#
#   docker build --build-arg FEATURES=source-k8s,k8s-v1_33,sink-sls,jemalloc -t eventer:sls .
#
# Runtime image: gcr.io/distroless/cc-debian12 (glibc, libgcc, CA certificates, tzdata,
# /etc/passwd with the `nonroot` user 65532; no shell, no package manager). The binary is
# linked against glibc (ring's C parts and the Rust std), hence `cc` rather than `static`.
# TLS is rustls: reqwest verifies the DingTalk and SLS endpoints against the system roots,
# read from /etc/ssl/certs/ca-certificates.crt (or $SSL_CERT_FILE), which the base provides;
# the apiserver is verified against the service account's ca.crt. The one exception is the
# Kafka sink: librdkafka uses OpenSSL. Both are compiled from source in the builder (make,
# perl and a C compiler) and linked statically: the binary needs glibc and libgcc only.
#
# The container writes nothing to its root filesystem: run it with
# readOnlyRootFilesystem: true. Use --checkpoint=configmap:<ns>/<name> in a cluster, or mount
# a writable volume for --checkpoint=file:<path>.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
ARG FEATURES=default
WORKDIR /src
# The whole workspace: Cargo needs every member's manifest (and the targets they declare),
# even to build one package.
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the
# cached target/ in the same step, since cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist -p eventer-cli --locked --no-default-features --features "$FEATURES" \
 && install -D -m 0755 target/dist/eventer /out/eventer \
 && /out/eventer --version

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="eventer" \
      org.opencontainers.image.description="Kubernetes Events to DingTalk, Alibaba Cloud SLS and other sinks; a kube-eventer successor" \
      org.opencontainers.image.source="https://github.com/eventer-rs/eventer" \
      org.opencontainers.image.licenses="Apache-2.0"
# /eventer, as in kube-eventer's ACK image (`command: [/eventer, --source=..., --sink=...]`).
COPY --from=builder /out/eventer /eventer
# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# /healthz, /readyz and /metrics (--healthz-port).
EXPOSE 8084
ENTRYPOINT ["/eventer"]
