# The operator image: kopf handlers, reconciler and metrics (the `operator` extra).
# Build from the repository root:  docker build -t hopscope-operator .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY probe-image/hopscope_probe probe-image/hopscope_probe
COPY probe-image/hopscope_policy probe-image/hopscope_policy
COPY operator/hopscope_operator operator/hopscope_operator
RUN pip install --no-cache-dir --prefix=/install ".[operator]"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="hopscope-operator" \
      org.opencontainers.image.description="hopscope operator: ConnectivityCheck controller" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /install /usr/local
# The operator only talks to the API server: no capabilities, no root.
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1
EXPOSE 9090 8080
# kopf, watching every namespace or only HOPSCOPE_WATCH_NAMESPACES (the chart's watch.namespaces).
ENTRYPOINT ["hopscope-operator"]
