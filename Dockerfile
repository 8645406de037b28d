# One image with every streamrec binary (ingestor, updater, api, replay, dev).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/ ./cmd/ingestor ./cmd/updater ./cmd/api ./cmd/dev && \
    CGO_ENABLED=0 go build -o /out/replay ./replay

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/ /usr/local/bin/
# docker stop sends SIGTERM; every binary drains, flushes and commits on it.
STOPSIGNAL SIGTERM
USER nonroot
