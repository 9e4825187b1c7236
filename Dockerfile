# The runpod-operator image: built with the Rust toolchain, run from a small distroless image
# as a non-root user. `docker build -t runpod-operator .`
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin runpod-operator

# glibc, CA certificates and a nonroot user (65532), nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/runpod-operator /usr/local/bin/runpod-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/runpod-operator"]
CMD ["run"]
