# syntax=docker/dockerfile:1
#
# The eventer image: the `eventer` binary as eventer-cli/dist/build.sh builds it (the `dist`
# profile's whole-program optimisation, glibc linked in statically, the code run at start laid
# out together), on a distroless base.
#
#   docker build -t eventer:dev .
#   docker run --rm eventer:dev --help
#
# FEATURES picks the binary's Cargo features (eventer-cli's; `default` is every source and
# sink). A binary for one job links less code, e.g. for an SLS archive:
#
#   docker build --build-arg FEATURES=source-k8s,k8s-v1_33,sink-sls,jemalloc -t eventer:sls .
#
# Runtime image: gcr.io/distroless/static-debian12 (CA certificates, tzdata, /etc/passwd with
# the `nonroot` user 65532, /etc/nsswitch.conf; no libc, no shell, no package manager). The
# binary needs no shared library: glibc, ring's C parts and, for the Kafka sink, librdkafka
# and OpenSSL are compiled or linked in statically. Host names are resolved by glibc's own
# `files` and `dns` lookups, which a static glibc has built in. TLS is rustls: reqwest
# verifies the DingTalk and SLS endpoints against the system roots, read from
# /etc/ssl/certs/ca-certificates.crt (or $SSL_CERT_FILE), which the base provides; the
# apiserver is verified against the service account's ca.crt. The one exception is the Kafka
# sink, on librdkafka's OpenSSL.
#
# The container writes nothing to its root filesystem: run it with
# readOnlyRootFilesystem: true. Use --checkpoint=configmap:<ns>/<name> in a cluster, or mount
# a writable volume for --checkpoint=file:<path>.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
ARG FEATURES=default
# A failed build inside the pipe below must fail the step.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# The whole workspace: Cargo needs every member's manifest (and the targets they declare),
# even to build one package.
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the
# cached target/ in the same step, since cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    bin=$(eventer-cli/dist/build.sh --locked --no-default-features --features "$FEATURES" | tail -n 1) \
 && install -D -m 0755 "$bin" /out/eventer \
 && /out/eventer --version

FROM gcr.io/distroless/static-debian12:nonroot
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
