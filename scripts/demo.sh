#!/usr/bin/env bash
# demo.sh: the HA and DR tour (make demo), from nothing, on loopback.
#
# It starts a three-node cluster (embedded etcd, three agents and PostgreSQL
# 15 servers, synchronous replication, WAL archived into a local
# repository) and the proxy; loads data through the proxy and takes a full
# backup; notes a point in time and writes more; runs a failover drill
# (kill -9 of the primary under a write workload through the proxy) judged
# against the plan's RTO and RPO; restores the backup to the point in time
# noted, starts it and checks its rows; runs the restore-test drill (the
# newest backup and a point in time, amcheck, timed against the RTO);
# prints where the failover drill's HTML report is. Everything it starts
# or creates is stopped and removed on exit.
#
# Environment:
#   BULWARK_BIN        use this bulwark binary instead of building bin/bulwark
#   BULWARK_PG_BIN     PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   BULWARK_DEMO_KEEP  set to 1 to keep the work directory (processes are stopped)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${BULWARK_PG_BIN:-/usr/lib/postgresql/15/bin}
WORK=
PROXY_PID=
PITR=

die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# run CMD...: show a command line (bulwark for the binary's path), then run it.
run() {
	show "${@/#"$BULWARK"/bulwark}"
	"$@"
}

# sql CONN QUERY: run QUERY and print its rows, fields separated by tabs.
sql() { "$PG_BIN/psql" -X -q -A -t -F $'\t' -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

cleanup() {
	local rc=$?
	set +e
	[[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
	[[ -n $PITR ]] && stop_pg "$PITR"
	if [[ -n $WORK && -f $WORK/c/bulwark.yaml ]]; then
		if ((rc != 0)); then
			for log in "$WORK"/c/n*/agent.log "$WORK"/logs/proxy.log; do
				[[ -f $log ]] && printf '\n--- last lines of %s ---\n' "$log" >&2 && tail -n 8 "$log" >&2
			done
		fi
		"$BULWARK" down --dir "$WORK/c" >/dev/null 2>&1
	fi
	remove_workdir "$rc" "${BULWARK_DEMO_KEEP:-0}" demo
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup() {
	section "Prerequisites"
	bash "$ROOT/scripts/install-deps.sh"
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulwark-demo.XXXXXX")
	chmod 755 "$WORK"
	mkdir "$WORK/logs"
	((EUID == 0)) && chown postgres: "$WORK/logs" # the restored server logs there
	if [[ -n ${BULWARK_BIN:-} ]]; then
		install -m 0755 "$BULWARK_BIN" "$WORK/bulwark"
	else
		echo "building bin/bulwark"
		(cd "$ROOT" && go build -o bin/bulwark ./cmd/bulwark)
		install -m 0755 "$ROOT/bin/bulwark" "$WORK/bulwark"
	fi
	BULWARK=$WORK/bulwark # a copy the postgres user can surely execute
	PLAN=$WORK/c/bulwark.yaml
}

start_cluster() {
	section "1. A three-node cluster: embedded etcd, agents, PostgreSQL 15, WAL archived into a repository"
	run "$BULWARK" up --dir "$WORK/c" --nodes 3 --replication sync --archive --crash-restarts 0
	RW=$(free_port) RO=$(free_port) HTTP=$(free_port)
	section "2. The proxy: a read-write port that follows the primary through etcd"
	# Not through run: a function in the background is a subshell, and $!
	# would name it, not the proxy, which cleanup would then leave running.
	show bulwark proxy --plan "$PLAN" --listen-rw "127.0.0.1:$RW" --listen-ro "127.0.0.1:$RO" --http "127.0.0.1:$HTTP"
	"$BULWARK" proxy --plan "$PLAN" --listen-rw "127.0.0.1:$RW" --listen-ro "127.0.0.1:$RO" \
		--http "127.0.0.1:$HTTP" >"$WORK/logs/proxy.log" 2>&1 &
	PROXY_PID=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null && break
		sleep 0.1
	done
	curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null || die "the proxy has no primary"
	APP="host=127.0.0.1 port=$RW user=postgres dbname=postgres sslmode=disable"
	echo "clients connect to: $APP"
}

# leader_field FIELD: a field of the current leader in cluster status.
leader_field() {
	"$BULWARK" cluster status --plan "$PLAN" -o json | jq -r --arg f "$1" '.leader as $l | .members[] | select(.name == $l) | .[$f]'
}

backup_and_point() {
	section "3. Data through the proxy, a full backup, a point in time"
	sql "$APP" "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric NOT NULL, at timestamptz DEFAULT now());
		INSERT INTO orders SELECT g, g % 100 FROM generate_series(1, 10000) g"
	local leader pgdata
	leader=$(leader_field name)
	pgdata=$WORK/c/$leader/pgdata
	run as_pg "$BULWARK" backup create --plan "$PLAN" --type full --pgdata "$pgdata" --db "$(leader_field conn)"
	sql "$APP" "INSERT INTO orders SELECT g, g % 100 FROM generate_series(10001, 15000) g"
	POINT=$(sql "$APP" "SELECT now()")
	sleep 1
	sql "$APP" "INSERT INTO orders SELECT g, g % 100 FROM generate_series(15001, 20000) g"
	# Close the segment holding the point so that it is archived now.
	local segment
	segment=$(sql "$APP" "SELECT pg_walfile_name(pg_switch_wal())")
	for _ in $(seq 100); do
		[[ $(sql "$(leader_field conn)" "SELECT coalesce(last_archived_wal, '') >= '$segment' FROM pg_stat_archiver") == t ]] && break
		sleep 0.2
	done
	echo "15000 orders at $POINT, 20000 now; WAL archived up to $segment"
}

drill() {
	section "4. A failover drill: kill -9 of the primary under writes through the proxy"
	local rc=0
	run "$BULWARK" drill run --plan "$PLAN" --scenario primary-crash --via "127.0.0.1:$RW" || rc=$?
	((rc == 0 || rc == 5)) || die "the drill could not run (exit $rc)"
	DRILL_RC=$rc
	echo "orders after the failover, through the proxy: $(sql "$APP" "SELECT count(*) FROM orders")"
}

pitr() {
	section "5. Point-in-time recovery of the backup to $POINT"
	PITR=$WORK/pitr
	mkdir -m 700 "$PITR"
	((EUID == 0)) && chown postgres: "$PITR"
	run as_pg "$BULWARK" restore --plan "$PLAN" --backup latest --pgdata "$PITR" --target-time "$POINT" --target-timeline current
	local port
	port=$(free_port)
	# The restored copy must not archive into the cluster's repository
	# nor wait for the cluster's standbys.
	as_pg "$PG_BIN/pg_ctl" -D "$PITR" -l "$WORK/logs/pitr.log" -w -t 120 start -o \
		"-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c archive_mode=off -c synchronous_standby_names=" \
		>/dev/null || die "the restored server did not start: $(tail -n 5 "$WORK/logs/pitr.log")"
	local conn="host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable" n
	for _ in $(seq 100); do
		[[ $(sql "$conn" "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && break
		sleep 0.2
	done
	n=$(sql "$conn" "SELECT count(*) FROM orders")
	echo "restored to $POINT: $n orders (want 15000)"
	[[ $n == 15000 ]] || die "point-in-time recovery restored $n orders, not 15000"
}

restore_test() {
	section "6. Restore test: the newest backup and a point in time, restored, checked and timed"
	run "$BULWARK" drill run --plan "$PLAN" --scenario restore-test || die "the restore test failed (exit $?)"
}

report() {
	section "7. Drill history and report"
	run "$BULWARK" drill history --plan "$PLAN"
	local html
	html=$("$BULWARK" drill history --plan "$PLAN" -o json | jq -r 'map(select(.scenario == "primary-crash")) | .[-1].reports.html')
	echo "HTML report of the failover drill: $html (kept only with BULWARK_DEMO_KEEP=1)"
	((DRILL_RC == 0)) || die "the drill missed a target of the plan"
	echo "demo: done in ${SECONDS}s"
}

main() {
	setup
	start_cluster
	backup_and_point
	drill
	pitr
	restore_test
	report
}

main "$@"
