# Container image of ipvs-reconciler: the Kubernetes agent (deploy/) or the standalone `run` mode.
# It needs CAP_NET_ADMIN in the host network namespace to program IPVS (hostNetwork: true in a pod).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
# The source revision that ipvs_reconciler_build_info and the first log line of `run` and `agent` name:
# docker build --build-arg REVISION=$(git rev-parse --short HEAD) ... (without it: "unknown", and not logged).
ARG REVISION=unknown
RUN IPVS_RECONCILER_REVISION=$REVISION cargo build --release --locked --bin ipvs-reconciler

FROM debian:bookworm-slim
# ipvsadm is not needed by the program; it is there for operators who exec into the container.
RUN apt-get update && apt-get install -y --no-install-recommends ipvsadm && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ipvs-reconciler /usr/local/bin/ipvs-reconciler
VOLUME /var/lib/ipvs-reconciler
ENTRYPOINT ["/usr/local/bin/ipvs-reconciler"]
# The Kubernetes agent by default (deploy/ sets NODE_NAME); `run --manifests DIR` for the standalone mode.
CMD ["agent"]
