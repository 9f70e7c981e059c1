# Builds every binary of the workspace once; docker-compose.yml runs each from this image.
#   docker build -t seattle-exporters .
FROM rust:1 AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/seattle_process_exporter \
       target/release/seattle_node_exporter \
       target/release/seattle_updatesite_exporter \
       target/release/seattle_zenodotus_exporter \
       target/release/seattle_simulator /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# The simulator writes its endpoints and update key here (a named volume in docker-compose.yml takes
# this directory's owner when first mounted).
RUN mkdir -p /var/lib/seattle && chown nobody /var/lib/seattle
# Unprivileged; the Zenodotus exporter's ICMP check uses an unprivileged ping socket where the kernel
# allows it (net.ipv4.ping_group_range) and reports seattle_zenodotus_icmp_possible 0 otherwise.
USER nobody
EXPOSE 19110 19111 19112 19113
CMD ["seattle_simulator", "--help"]
