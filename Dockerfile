# syntax=docker/dockerfile:1
#
# The kedge image: the kedge binary and the shared libraries it links, on distroless, running
# as UID 65532.
#
#   docker build -t ghcr.io/kedge-autoscaler/kedge:0.1.0 .
#
# Not built yet: the development machines have no Docker engine. The library list below was
# checked with `ldd` on a build of the same features on Debian 12.
#
# The image is built with `--no-default-features`: that leaves out `kedge dev` and the
# embedded test API server (`local-cluster`) it runs on, so the production binary carries no
# code of a stand-in Kubernetes.
#
# Offline builds (no access to crates.io): vendor the dependencies into the build context first,
#
#   mkdir -p .cargo && cargo vendor --locked vendor > .cargo/config.toml
#
# (`cargo vendor` prints the source replacement that .cargo/config.toml needs); when both
# vendor/ and .cargo/config.toml are present the build runs `cargo build --offline`.

FROM rust:1-bookworm AS build
# The kafka scaler builds librdkafka from source and links the system's OpenSSL, libcurl (for
# OAUTHBEARER/OIDC) and zlib: their -dev packages, make and a C/C++ compiler all come with this
# image (buildpack-deps), so nothing is installed here and an offline build needs no apt.
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    offline=""; \
    if [ -d vendor ] && [ -f .cargo/config.toml ]; then offline="--offline"; fi; \
    cargo build --release --locked $offline -p kedge --no-default-features; \
    mkdir -p /out/lib; \
    cp target/release/kedge /out/kedge
# The shared libraries kedge needs beyond what distroless/cc has (glibc, libgcc_s, libstdc++,
# OpenSSL): libcurl and its dependency tree (nghttp2, idn2, rtmp/gnutls, ssh2, psl, Kerberos,
# LDAP, zstd, brotli, ...) and zlib, as `ldd` lists them on a bookworm build. Taken from `ldd` so
# the list follows the build instead of being kept by hand, and copied from this Debian 12 stage
# into the Debian 12 runtime. glibc's own libraries are never copied: they must match the
# runtime's loader.
RUN set -eux; \
    ldd /out/kedge | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do \
      case "$(basename "$lib")" in \
        ld-linux*|libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*|\
        libutil.so.*|libanl.so.*|libnss_*|libgcc_s.so.*|libstdc++.so.*) ;; \
        *) cp -L "$lib" /out/lib/ ;; \
      esac; \
    done; \
    ls -l /out/lib; \
    LD_LIBRARY_PATH=/out/lib /out/kedge --version

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/lib/ /usr/lib/kedge/
COPY --from=build /out/kedge /kedge
ENV LD_LIBRARY_PATH=/usr/lib/kedge
USER 65532:65532
ENTRYPOINT ["/kedge"]
CMD ["run"]
