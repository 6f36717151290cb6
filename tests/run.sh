#!/usr/bin/env bash
# Installs what the test suite needs and runs all of it. The one command for a fresh Debian
# machine, run as root (the integration tests start real dockerd engines in namespaces):
#
#   bash tests/run.sh                         # everything
#   bash tests/run.sh --test support_smoke    # arguments before `--` go to `cargo test`
#   bash tests/run.sh -- --nocapture          # arguments after `--` go to the test binaries
#
# Environment: SHOAL_TEST_THREADS (default 4) tests run at once; SHOAL_TEST_LOGS=DIR keeps the
# logs of every engine and manager the tests started.
set -euo pipefail

# Debian packages the tests use. Add new test dependencies here (e.g. etcd-server, zookeeper).
TEST_PACKAGES=(
	make           # builds jemalloc, the manager's allocator (with the C compiler)
	docker.io      # dockerd 20.10, containerd, runc, and the legacy docker CLI
	busybox-static # the whole userland of the busybox test image
	iproute2       # `ip`, to bring up lo inside each engine's network namespace
	util-linux     # unshare (namespaces) and setpriv (children die with the test process)
	tar
	etcd-server    # discovery and leader election over etcd (tests/discovery_kv.rs, replication.rs)
	zookeeper      # discovery and leader election over ZooKeeper
	docker-registry # a local registry for pull/push tests (tests/support/registry.rs)
	docker-compose # compose projects through the manager (tests/compose.rs)
	socat          # forwards the registry into each engine's network namespace
	python3-docker # docker-py, the Python SDK, through the manager (tests/sdk_images.rs, sdk_swarm_links.rs)
	haproxy        # the load balancer in front of replicated managers (tests/ha_balancer.rs)
	prometheus     # a real Prometheus server scraping /metrics (tests/metrics_prometheus.rs)
)

say() { printf '==> %s\n' "$*" >&2; }
run() {
	printf '+ %s\n' "$*" >&2
	"$@"
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "tests/run.sh must run as root: it installs packages, and the tests start dockerd in namespaces" >&2
	exit 1
fi

missing=()
for package in "${TEST_PACKAGES[@]}"; do
	if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" != installed ]]; then
		missing+=("$package")
	fi
done
if ((${#missing[@]})); then
	say "installing missing test dependencies: ${missing[*]}"
	# Installing docker.io would start the host's own Docker service; the tests need none, so
	# forbid service starts for the duration (unless the machine already has such a policy).
	policy=/usr/sbin/policy-rc.d
	created_policy=false
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		created_policy=true
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	run apt-get update
	run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
	if $created_policy; then
		rm -f "$policy"
		trap - EXIT
	fi
else
	say "test dependencies already installed: ${TEST_PACKAGES[*]}"
fi

if ! command -v cargo >/dev/null; then
	echo "cargo not found: install a Rust toolchain (rustup) first" >&2
	exit 1
fi

cargo_args=()
while (($#)) && [[ $1 != -- ]]; do
	cargo_args+=("$1")
	shift
done
(($#)) && shift # the `--`

say "running the test suite"
run cargo test --all-targets "${cargo_args[@]}" -- --test-threads="${SHOAL_TEST_THREADS:-4}" "$@"
