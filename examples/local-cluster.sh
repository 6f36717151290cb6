#!/usr/bin/env bash
# Starts a local Shoal cluster: three real Docker engines (each in its own namespaces, on a
# loopback port) and a manager in front of them. Installs what it needs on Debian first.
# Usage: bash examples/local-cluster.sh [--port PORT]   (run as root)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "local-cluster: run as root (engines need namespaces and cgroups)" >&2
	exit 1
fi
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
[[ -x /bin/busybox ]] && /bin/busybox --list >/dev/null 2>&1 || missing+=(busybox-static)
command -v unshare >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
if [[ ${#missing[@]} -gt 0 ]]; then
	echo "local-cluster: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --quiet --bin swarm --example local_cluster
exec cargo run --quiet --example local_cluster -- "$@"
