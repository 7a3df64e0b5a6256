#!/usr/bin/env bash
# demo-backup.sh: backups, incrementals and a restore against a real local PostgreSQL 15
# (make demo-backup; make demo is the HA and DR tour, scripts/demo.sh).
#
# It initdbs a server with data checksums on a free loopback port, loads data,
# takes a full backup, writes more, takes an incremental backup, restores the
# latest backup into a new data directory, starts it on another port and
# compares every table of the two servers. Exits 1 unless they all match.
# Everything it starts or creates is stopped and removed on exit.
#
# Environment:
#   BULWARK_BIN        use this bulwark binary instead of building bin/bulwark
#   BULWARK_PG_BIN     PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   BULWARK_DEMO_KEEP  set to 1 to keep the work directory (servers are stopped)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_BIN=${BULWARK_PG_BIN:-/usr/lib/postgresql/15/bin}
WORK=
STARTED=() # data directories of the servers started, stopped on exit

die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

cleanup() {
	local rc=$? dir log
	set +e
	if ((rc != 0)) && [[ -n $WORK ]]; then
		for log in "$WORK"/logs/source.log "$WORK"/logs/restored.log; do
			[[ -f $log ]] || continue
			printf '\n--- last lines of %s ---\n' "$log" >&2
			tail -n 20 "$log" >&2
		done
	fi
	for dir in "${STARTED[@]}"; do
		stop_pg "$dir"
	done
	if [[ -n $WORK ]]; then
		if [[ ${BULWARK_DEMO_KEEP:-} == 1 ]]; then
			echo "demo: kept $WORK" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# pg_start DATADIR PORT NAME: start a server and wait until it accepts
# connections (a restored one may have to recover first).
pg_start() {
	local opts="-c port=$2 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK/sock"
	STARTED+=("$1")
	as_pg "$PG_BIN/pg_ctl" -D "$1" -l "$WORK/logs/$3.log" -o "$opts" -w -t 300 start >/dev/null ||
		die "PostgreSQL $3 on $1 did not start"
	echo "PostgreSQL $3 running: data $1, port $2"
}

# sql PORT QUERY: run QUERY and print its rows, fields separated by tabs.
sql() {
	"$PG_BIN/psql" -X -q -A -t -F $'\t' -v ON_ERROR_STOP=1 \
		-h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

# bulwark ARGS...: show the command, run it as the postgres user, time it.
bulwark() {
	local start=$SECONDS
	show bulwark "$@"
	as_pg "$BULWARK" "$@" || die "bulwark $1 $2 failed with exit status $?"
	printf '(%ds)\n' $((SECONDS - start))
}

# pgbench PORT ARGS...: run pgbench, print its throughput line.
pgbench() {
	local port=$1 log=$WORK/logs/pgbench.log
	shift
	show pgbench "$@"
	"$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres "$@" postgres >"$log" 2>&1 ||
		die "pgbench $* failed: $(tail -n 5 "$log")"
	grep -E '^tps|^done in' "$log" || true
}

LIST_TABLES="SELECT n.nspname || '.' || c.relname, format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'"

# Row count and an order-independent content hash, as internal/pgtest does.
HASH_TABLE="SELECT count(*), md5(coalesce(string_agg(md5(ROW(r.*)::text), ''
  ORDER BY md5(ROW(r.*)::text) COLLATE \"C\"), '')) FROM ONLY @TABLE@ r"

# table_hashes PORT: print "schema.table<TAB>rows<TAB>hash", sorted.
table_hashes() {
	local name quoted
	sql "$1" "$LIST_TABLES" | while IFS=$'\t' read -r name quoted; do
		printf '%s\t%s\n' "$name" "$(sql "$1" "${HASH_TABLE//@TABLE@/$quoted}" </dev/null)"
	done | LC_ALL=C sort
}

# compare PORT_A PORT_B: print both servers' tables side by side; fail unless
# the same tables have the same rows.
compare() {
	local a b name rows_a hash_a rows_b hash_b verdict ok=true n=0
	a=$(table_hashes "$1")
	b=$(table_hashes "$2")
	[[ -n $a ]] || die "no tables found on the source"
	printf '%-26s %9s %-17s %9s %-17s %s\n' TABLE ROWS SOURCE ROWS RESTORED ""
	while IFS=$'\t' read -r name rows_a hash_a rows_b hash_b; do
		verdict=MATCH
		if [[ $rows_a != "$rows_b" || $hash_a != "$hash_b" ]]; then
			verdict=DIFFERENT
			ok=false
		fi
		printf '%-26s %9s %-17s %9s %-17s %s\n' "$name" "$rows_a" "${hash_a:0:16}" \
			"$rows_b" "${hash_b:0:16}" "$verdict"
		n=$((n + 1))
	done < <(LC_ALL=C join -t $'\t' -a 1 -a 2 -e - -o 0,1.2,1.3,2.2,2.3 <(echo "$a") <(echo "$b"))
	if ! $ok; then
		echo "DIFFERENT: the restored server does not match the source" >&2
		return 1
	fi
	echo "MATCH: all $n tables are identical"
}

main() {
	section "Prerequisites"
	bash "$ROOT/scripts/install-deps.sh"
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulwark-demo.XXXXXX")
	chmod 755 "$WORK"
	mkdir "$WORK/sock" "$WORK/logs"
	if ((EUID == 0)); then
		chown postgres: "$WORK" "$WORK/sock" "$WORK/logs"
	fi
	if [[ -n ${BULWARK_BIN:-} ]]; then
		install -m 0755 "$BULWARK_BIN" "$WORK/bulwark"
	else
		echo "building bin/bulwark"
		(cd "$ROOT" && go build -o bin/bulwark ./cmd/bulwark)
		install -m 0755 "$ROOT/bin/bulwark" "$WORK/bulwark"
	fi
	BULWARK=$WORK/bulwark # a copy the postgres user can surely execute
	echo "work directory: $WORK"

	local repo="file://$WORK/repo" src=$WORK/source dst=$WORK/restored src_port dst_port db
	export BULWARK_REPO=$repo
	BULWARK_REPO_PASSWORD=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
	export BULWARK_REPO_PASSWORD

	section "Source server: initdb with data checksums"
	as_pg "$PG_BIN/initdb" -D "$src" --data-checksums -A trust -U postgres \
		-E UTF8 --locale=C >"$WORK/logs/initdb.log" 2>&1 || die "initdb failed: $(tail "$WORK/logs/initdb.log")"
	src_port=$(free_port)
	pg_start "$src" "$src_port" source
	db="host=127.0.0.1 port=$src_port user=postgres dbname=postgres sslmode=disable"

	section "Load data: pgbench scale 5 and a table of random text"
	pgbench "$src_port" -i -s 5 -q
	sql "$src_port" "CREATE TABLE notes AS
		SELECT g AS id, now() AS created, repeat(md5(random()::text), 1 + (random() * 30)::int) AS body
		FROM generate_series(1, 20000) g;
		ALTER TABLE notes ADD PRIMARY KEY (id)"
	sql "$src_port" "SELECT 'database size: ' || pg_size_pretty(pg_database_size('postgres'))"

	section "Repository"
	bulwark repo init --repo "$repo"

	section "Full backup"
	bulwark backup create --repo "$repo" --pgdata "$src" --db "$db" --type full

	section "More writes"
	pgbench "$src_port" -t 2000
	sql "$src_port" "UPDATE notes SET body = md5(body) WHERE id % 10 = 0;
		DELETE FROM notes WHERE id % 97 = 0;
		INSERT INTO notes SELECT g, now(), md5(random()::text) FROM generate_series(20001, 25000) g"

	section "Incremental backup"
	bulwark backup create --repo "$repo" --pgdata "$src" --db "$db" --type incr

	section "Restore the latest backup into a new data directory"
	bulwark restore --repo "$repo" --backup latest --pgdata "$dst"
	dst_port=$(free_port)
	pg_start "$dst" "$dst_port" restored

	section "Compare every table: source vs restored"
	compare "$src_port" "$dst_port"

	section "Backups in the repository"
	bulwark backup list --repo "$repo"

	section "Done"
}

main "$@"
