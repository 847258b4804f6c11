# Cone's container images, one target each: `server` (cone-server, the default), `connector` (cone-aws serve) and
# `cli` (cone with cone-cli beside it).
#
#   docker build --target server -t cone-server .
#
# From binaries already built on Debian bookworm, without the Rust stage: put them in bin/ and add
# `--build-arg BINARIES=prebuilt`. Podman 4.3 (Buildah 1.28, Debian bookworm's) ignores BINARIES' default when it
# decides which stages to build, and so skips `build`: there, pass `--build-arg BINARIES=build` as well.
# Every target runs as 10001:10001 and writes nothing to its root filesystem, so it runs with a read-only one
# (readOnlyRootFilesystem in deploy/kubernetes).

# Fully qualified: Podman resolves no short names unless registries.conf names a registry to search.
ARG BASE=docker.io/library/debian:bookworm-slim
ARG BINARIES=build

# The same Debian release as the runtime base: the binaries link the glibc they were built against.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between builds; target/ being a cache mount, the
# binaries are copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bin cone-server --bin cone-aws --bin cone --bin cone-cli \
    && mkdir /out \
    && cd target/release && cp cone-server cone-aws cone cone-cli /out/

FROM scratch AS prebuilt
COPY bin/ /out/

# COPY --from does not expand build arguments, but FROM does: the final stages copy from this alias.
FROM ${BINARIES} AS binaries

FROM ${BASE} AS runtime
# The AWS SDK trusts the system's certificate authorities. The binaries link only glibc and libgcc_s, which it has.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 cone \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cone
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001

FROM runtime AS connector
# AWS credentials and the BATON_* settings come from the environment (`cone-aws serve --help`).
COPY --from=binaries /out/cone-aws /usr/local/bin/
ENTRYPOINT ["cone-aws"]
CMD ["serve"]

FROM runtime AS cli
# cone runs cone-cli from its own directory for everything but cached credential requests. Both keep their settings
# under $HOME, which this user lacks: mount a writable directory and set HOME to it.
COPY --from=binaries /out/cone /out/cone-cli /usr/local/bin/
ENTRYPOINT ["cone"]

# Last, so that a build without --target makes the server.
FROM runtime AS server
COPY --from=binaries /out/cone-server /usr/local/bin/
# The port deploy/kubernetes's configuration listens on (`listen: 0.0.0.0:8080`); the default is 127.0.0.1:8480.
EXPOSE 8080
ENTRYPOINT ["cone-server"]
CMD ["serve", "--config", "/etc/cone/config/cone-server.yaml"]
