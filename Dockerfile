# Multi-stage build of a small static egressd image.
#   docker build -t egressd .
#   docker run -d --name egressd --network host --cap-add NET_ADMIN \
#     -v /etc/egressd:/etc/egressd:ro egressd
# --network host: egressd installs its nftables table and listens in the
# host's network namespace, where the clients' traffic is routed.
# --cap-add NET_ADMIN: nftables and the forwarding sysctls. If /proc/sys is
# read-only in your runtime, set net.ipv4.ip_forward=1 on the host first;
# egressd accepts values that are already right.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -buildvcs=auto -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/egressd ./cmd/egressd \
 && /out/egressd version

FROM scratch
COPY --from=build /out/egressd /egressd
# CA certificates for the EC2 API (the ha section); nothing else reads them.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY cmd/egressd/egressd.example.yaml /etc/egressd/egressd.yaml
ENTRYPOINT ["/egressd"]
CMD ["run", "-c", "/etc/egressd/egressd.yaml"]
