# dwcp-anomaly container image (docs/operations.md, "Run it in a container").
#
#   docker build --build-arg DWCP_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t dwcp-anomaly .
#   docker run -d -p 9490:9490 -p 4317:4317 -v dwcp-state:/var/lib/dwcp-anomaly dwcp-anomaly
#   docker run ... -v $PWD/dwcp-anomaly.yaml:/etc/dwcp-anomaly/dwcp-anomaly.yaml:ro dwcp-anomaly \
#       serve --config /etc/dwcp-anomaly/dwcp-anomaly.yaml --state-dir /var/lib/dwcp-anomaly
#
# Three stages: the release build, ONNX Runtime's library taken from the pinned onnxruntime
# wheel (the same file the tests load), and a small Debian runtime running as a non-root user
# with its state on a volume. tests/install.rs lints this file and builds it where a container
# engine runs.

FROM rust:1.95-bookworm AS build
ARG DWCP_GIT_COMMIT=unknown
ENV DWCP_GIT_COMMIT=${DWCP_GIT_COMMIT}
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dwcp-anomaly \
    && install -m 0755 target/release/dwcp-anomaly /usr/local/bin/dwcp-anomaly

FROM python:3.11-slim-bookworm AS onnxruntime
RUN pip install --no-cache-dir --no-deps --target /ort onnxruntime==1.32.0 \
    && install -m 0644 /ort/onnxruntime/capi/libonnxruntime.so.1.32.0 /libonnxruntime.so.1.32.0

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/dwcp-anomaly --no-create-home dwcp \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/dwcp-anomaly
COPY --from=build /usr/local/bin/dwcp-anomaly /usr/local/bin/dwcp-anomaly
COPY --from=onnxruntime /libonnxruntime.so.1.32.0 /usr/local/lib/libonnxruntime.so.1.32.0
COPY models /usr/share/dwcp-anomaly/models
ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.1.32.0 \
    NO_COLOR=1
USER 10001:10001
WORKDIR /var/lib/dwcp-anomaly
VOLUME ["/var/lib/dwcp-anomaly"]
EXPOSE 9490 4317
ENTRYPOINT ["/usr/local/bin/dwcp-anomaly"]
CMD ["serve", "--state-dir", "/var/lib/dwcp-anomaly"]
