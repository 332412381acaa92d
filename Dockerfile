# Caddy with the caddy-edge plugin, on the official Caddy images. From the
# repository root:
#
#   docker build -t caddy-edge .
#   docker run -p 80:80 -p 443:443 -v $PWD/Caddyfile:/etc/caddy/Caddyfile caddy-edge
#
# The versions match the Makefile's CADDY_VERSION (readme_test.go checks it).
# The result is the official image with this plugin added: same paths
# (/etc/caddy/Caddyfile, /data, /config), same user and command.

FROM caddy:2.11.9-builder AS builder

WORKDIR /src/caddy-edge
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN xcaddy build v2.11.9 \
	--with github.com/caddy-edge/edge@v0.0.0=/src/caddy-edge \
	--output /usr/bin/caddy

FROM caddy:2.11.9

COPY --from=builder /usr/bin/caddy /usr/bin/caddy
