# Builds the `swarm` binary and ships it the way the classic image did: `swarm` as entrypoint,
# listening on every interface, port 2375, by default.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin swarm

FROM debian:bookworm-slim
COPY --from=build /src/target/release/swarm /usr/local/bin/swarm
ENV SWARM_HOST=:2375
EXPOSE 2375
ENTRYPOINT ["swarm"]
CMD ["--help"]
