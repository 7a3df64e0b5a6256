#!/usr/bin/env bash
# install-deps.sh: install, from Debian's packages, what the tests and the
# demo need (PostgreSQL 15 server, client and contrib: initdb, postgres,
# pgbench, pg_basebackup, pg_amcheck, pg_rewind, the amcheck extension;
# HAProxy, which the HA tests route through as Patroni users do) and, with
# --bench, the peers the benchmarks compare against (pgbackrest; bench/ha.sh
# installs Patroni and etcd-server itself).
#
# Idempotent and silent when everything is present. Runs `apt-get update`
# only when something is missing, uses sudo only when not root. Debian would
# create and start a "main" cluster on install: the tests start their own
# servers, so it is prevented via createcluster.d.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
PG_SHARE=/usr/share/postgresql/15

usage() {
	echo "usage: $0 [--bench]" >&2
}

bench=false
for arg in "$@"; do
	case $arg in
	--bench) bench=true ;;
	-h | --help) usage; exit 0 ;;
	*) usage; exit 2 ;;
	esac
done

missing=()
# need PACKAGE PATH...: queue PACKAGE when any of the paths is missing.
need() {
	local pkg=$1 path
	shift
	for path in "$@"; do
		if [[ ! -e $path ]]; then
			missing+=("$pkg")
			return
		fi
	done
}

need postgresql-15 "$PG_BIN/postgres" "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pgbench" \
	"$PG_SHARE/extension/amcheck.control"
need postgresql-client-15 "$PG_BIN/psql" "$PG_BIN/pg_basebackup" "$PG_BIN/pg_amcheck" \
	"$PG_BIN/pg_controldata" "$PG_BIN/pg_rewind"
need haproxy /usr/sbin/haproxy
need jq /usr/bin/jq     # make demo reads bulwark's JSON
need curl /usr/bin/curl # make demo waits for the proxy's /health
if $bench; then
	need pgbackrest /usr/bin/pgbackrest
fi

if ((${#missing[@]} == 0)); then
	exit 0
fi

sudo=()
if ((EUID != 0)); then
	if ! command -v sudo >/dev/null; then
		echo "install-deps.sh: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	fi
	sudo=(sudo)
fi

echo "install-deps.sh: installing ${missing[*]}" >&2

# No "main" cluster: createcluster.conf includes createcluster.d, and a file
# there neither conflicts with the package's own conffile nor needs it yet.
"${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" |
	"${sudo[@]}" tee /etc/postgresql-common/createcluster.d/bulwark-no-main-cluster.conf >/dev/null

log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt() {
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; then
		cat "$log" >&2
		echo "install-deps.sh: apt-get $* failed" >&2
		exit 1
	fi
}
apt update -q
apt install -y -q --no-install-recommends "${missing[@]}"

for p in "$PG_BIN/postgres" "$PG_BIN/pgbench" "$PG_BIN/pg_amcheck" /usr/sbin/haproxy; do
	[[ -e $p ]] || { echo "install-deps.sh: $p still missing after install" >&2; exit 1; }
done
if $bench && [[ ! -e /usr/bin/pgbackrest ]]; then
	echo "install-deps.sh: pgbackrest still missing after install" >&2
	exit 1
fi
