# The manager image. Not built or tested on the development machines (they have no container engine); CI does
# not build it yet. Static binary, distroless, non-root (UID 65532, as the chart's securityContext expects).
FROM golang:1.26 AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY config/ config/
COPY controllers/ controllers/
COPY internal/ internal/
COPY webhookserver/ webhookserver/
RUN go build -trimpath -ldflags=-s -o /cardplane ./cmd/cardplane

FROM gcr.io/distroless/static:nonroot
COPY --from=build /cardplane /cardplane
USER 65532:65532
ENTRYPOINT ["/cardplane"]
CMD ["manager"]
