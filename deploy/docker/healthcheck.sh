#!/bin/bash
# Health check for the Switchyard image (Docker HEALTHCHECK, Kubernetes exec probes in
# sidecar mode): GET PATH (default /healthz) from the data plane on 127.0.0.1 and exit 0
# only on HTTP 200. bash alone, through /dev/tcp: the slim image has no curl.
#
#   switchyard-healthcheck [/healthz|/readyz]
#
# Port: SWITCHYARD_HEALTH_PORT, else the port of SWITCHYARD_LISTEN (which the default
# gateway.yaml uses for server.listen), else 8080.
set -u
path="${1:-/healthz}"
listen="${SWITCHYARD_LISTEN:-}"
port="${SWITCHYARD_HEALTH_PORT:-${listen##*:}}"
port="${port:-8080}"

exec 3<>"/dev/tcp/127.0.0.1/${port}" 2>/dev/null || {
    echo "unhealthy: nothing listening on 127.0.0.1:${port}" >&2
    exit 1
}
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
status_line=""
IFS= read -r -t 5 status_line <&3
exec 3<&-
read -r _version status _reason <<<"$status_line"
if [ "${status:-}" = 200 ]; then
    exit 0
fi
echo "unhealthy: GET ${path} on 127.0.0.1:${port} answered '${status_line%$'\r'}'" >&2
exit 1
