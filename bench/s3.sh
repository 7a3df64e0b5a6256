#!/usr/bin/env bash
# bench/s3.sh: full backup to and restore from a local S3 server, bulwark
# against pgBackRest on the same server, in one run.
#
# The S3 server is internal/s3test/s3server (versitygw's gateway over a
# directory) serving HTTPS with a self-signed certificate for 127.0.0.1
# (pgBackRest's S3 driver speaks HTTPS only); both tools verify it against
# that certificate. The dataset is `pgbench -i -s BENCH_S3_SCALE` plus a
# CHECKPOINT on a fresh PostgreSQL 15 cluster. Each run, into fresh buckets:
#   - bulwark: repo init, timed `backup create --type full --wal copy`, timed
#     `restore` into a new directory;
#   - pgBackRest: stanza-create, timed `backup --type=full` (zst level 3,
#     aes-256-cbc, process-max=2, start-fast, archive-copy: its WAL is pushed
#     by archive_command into the same bucket and copied into the backup),
#     timed `restore` into a new directory.
# Both restores are then started on a spare port and must answer
# SELECT count(*) FROM pgbench_accounts with the right count.
#
# Prints a Markdown report, writes it to bench/out/s3-<date>.md and copies it
# to bench/RESULTS-s3.md. Everything it starts or creates is stopped and
# removed on exit. See bench/README.md.
#
# Environment:
#   BENCH_RUNS        repetitions; medians reported (1)
#   BENCH_S3_SCALE    pgbench scale (50, about 750 MB)
#   BENCH_TMPDIR      where the work directory is made (/var/tmp; needs user xattrs)
#   BENCH_KEEP        1: keep the work directory (servers are stopped)
#   BULWARK_BIN       bulwark binary to use (default bin/bulwark, built if missing)
#   BULWARK_PG_BIN    PostgreSQL 15 programs (/usr/lib/postgresql/15/bin)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_BIN=${BULWARK_PG_BIN:-/usr/lib/postgresql/15/bin}
RUNS=${BENCH_RUNS:-1}
SCALE=${BENCH_S3_SCALE:-50}
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
KEEP=${BENCH_KEEP:-0}

WORK=
PGDATA=
PORT=
DB=
BULWARK=
S3_PID=
S3_PORT=
S3_DIR=
S3_ACCESS=benchaccess
S3_SECRET=
RPGDATA= # a restored cluster being verified
DROP_OK=1
REV=unknown
DIRTY=0
NOTES=()
# R["metric.tool.run"]: time (s), stored bytes, verification. F["tool.run"]: failure.
declare -A R=() F=()


sql() {
	"$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${2:-$PORT}" -U postgres -d postgres -c "$1"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
dusb() { if [[ -e $1 ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }

drop_caches() {
	sync
	if ((DROP_OK)) && ! (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
		DROP_OK=0
		log "cannot drop the page cache: runs start with whatever is cached"
		NOTES+=("The page cache could NOT be dropped: runs started with whatever was cached.")
	fi
}

# bw ARGS...: bulwark as postgres, with the S3 settings.
bw() {
	as_pg env AWS_ENDPOINT_URL="https://127.0.0.1:$S3_PORT" AWS_REGION=us-east-1 \
		AWS_ACCESS_KEY_ID="$S3_ACCESS" AWS_SECRET_ACCESS_KEY="$S3_SECRET" \
		BULWARK_S3_CA_FILE="$WORK/tls/cert.pem" BULWARK_REPO_PASSWORD_FILE="$WORK/password" \
		"$BULWARK" "$@"
}

# timed KEY CMD...: drop the page cache, run CMD, record R[time.KEY]; a
# failure sets F[KEY] and does not stop the benchmark. Output to logs/KEY.log.
timed() {
	local key=$1 t0 rc=0
	shift
	drop_caches
	t0=$(now)
	"$@" >"$WORK/logs/$key.log" 2>&1 || rc=$?
	if ((rc != 0)); then
		F[$key]="exit $rc: $(tail -n 3 "$WORK/logs/$key.log" | tr '\n' ' ')"
		log "FAILED: $key: ${F[$key]}"
		return 0
	fi
	R[time.$key]=$(elapsed "$t0" "$(now)")
	log "    $key: ${R[time.$key]} s"
}

stop_s3() {
	[[ -n $S3_PID ]] || return 0
	kill -TERM "$S3_PID" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$S3_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$S3_PID" 2>/dev/null || true
	wait "$S3_PID" 2>/dev/null || true
	S3_PID=
}

cleanup() {
	local rc=$?
	set +e
	[[ -n $RPGDATA ]] && stop_pg "$RPGDATA"
	stop_pg "$PGDATA"
	stop_s3
	remove_workdir "$rc" "$KEEP" bench
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- setup

start_s3() {
	mkdir -p "$WORK/tls" "$S3_DIR"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1,DNS:127.0.0.1 -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" \
		>"$WORK/logs/openssl.log" 2>&1 || die "openssl failed: $(tail -n 5 "$WORK/logs/openssl.log")"
	chmod 644 "$WORK/tls/cert.pem"
	log "building the S3 server"
	(cd "$ROOT" && go build -o "$WORK/s3server" ./internal/s3test/s3server) || die "go build s3server failed"
	S3_PORT=$(free_port)
	"$WORK/s3server" -dir "$S3_DIR" -addr "127.0.0.1:$S3_PORT" -access "$S3_ACCESS" -secret "$S3_SECRET" \
		-tls-cert "$WORK/tls/cert.pem" -tls-key "$WORK/tls/key.pem" >"$WORK/logs/s3server.out" 2>"$WORK/logs/s3server.err" &
	S3_PID=$!
	for _ in $(seq 300); do
		grep -qx ready "$WORK/logs/s3server.out" 2>/dev/null && break
		kill -0 "$S3_PID" 2>/dev/null || die "s3server exited: $(tail -n 5 "$WORK/logs/s3server.err")"
		sleep 0.1
	done
	grep -qx ready "$WORK/logs/s3server.out" || die "s3server not ready after 30 s"
	log "S3 server (HTTPS) on 127.0.0.1:$S3_PORT over $S3_DIR"
}

make_dataset() {
	PGDATA=$WORK/pgdata
	# archive_mode on for pgBackRest's archive-copy; archive_command is a
	# no-op except while pgBackRest runs.
	init_cluster "$PGDATA" <<-EOF
		archive_mode = on
		archive_command = '/bin/true'
	EOF
	as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/logs/server.log" -w -t 120 start >/dev/null ||
		die "PostgreSQL did not start"
	DB="host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable"
	log "pgbench -i -s $SCALE on port $PORT"
	"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres \
		>"$WORK/logs/pgbench-init.log" 2>&1 || die "pgbench -i failed: $(tail -n 5 "$WORK/logs/pgbench-init.log")"
	sql "CHECKPOINT"
	R[dbsize]=$(sql "SELECT pg_database_size('postgres')")
	R[rows]=$(sql "SELECT count(*) FROM pgbench_accounts")
	log "database $(human "${R[dbsize]}"), ${R[rows]} rows in pgbench_accounts"
}

set_archive_command() {
	sql "ALTER SYSTEM SET archive_command = '$1'"
	sql "SELECT pg_reload_conf()" >/dev/null
}

# pgbr_conf RUN: write the configuration of run RUN (bucket pgbr-RUN).
pgbr_conf() {
	local conf=$WORK/conf/pgbr.$1.conf
	{
		echo "[global]"
		echo "repo1-type=s3"
		echo "repo1-s3-bucket=pgbr-$1"
		echo "repo1-s3-endpoint=127.0.0.1"
		echo "repo1-storage-port=$S3_PORT"
		echo "repo1-s3-region=us-east-1"
		echo "repo1-s3-key=$S3_ACCESS"
		echo "repo1-s3-key-secret=$S3_SECRET"
		echo "repo1-s3-uri-style=path"
		echo "repo1-storage-ca-file=$WORK/tls/cert.pem"
		echo "repo1-path=/bench"
		echo "repo1-retention-full=99"
		echo "repo1-cipher-type=aes-256-cbc"
		echo "repo1-cipher-pass=$(cat "$WORK/password")"
		echo "compress-type=zst"
		echo "compress-level=3"
		echo "process-max=2"
		echo "start-fast=y"
		echo "archive-copy=y"
		echo "log-path=$WORK/pgbr/log"
		echo "lock-path=$WORK/pgbr/lock"
		echo "spool-path=$WORK/pgbr/spool"
		echo "log-level-console=warn"
		echo "log-level-file=info"
		echo
		echo "[bench]"
		echo "pg1-path=$PGDATA"
		echo "pg1-port=$PORT"
		echo "pg1-socket-path=$WORK/sock"
		echo "pg1-user=postgres"
	} >"$conf"
	chown postgres: "$conf"
	chmod 600 "$conf"
	echo "$conf"
}

# verify TOOL.RUN DIR: start the restored cluster on a spare port, count
# pgbench_accounts, stop it. Sets R[verify.KEY].
verify() {
	local key=$1 dir=$2 p n ok=0 i
	RPGDATA=$dir
	# free_port only checks that nobody listens: a port held by a client
	# connection (the tools' own S3 connections) fails the bind; try another.
	for ((i = 0; i < 5; i++)); do
		p=$(free_port)
		if as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$WORK/logs/$key.server.log" -w -t 300 \
			-o "-p $p -c archive_mode=off" start >/dev/null 2>&1; then
			ok=1
			break
		fi
		grep -q "could not create any TCP/IP sockets" "$WORK/logs/$key.server.log" || break
		log "    port $p unusable, trying another"
	done
	if ((!ok)); then
		R[verify.$key]="**did not start**"
		F[$key.restore]=${F[$key.restore]:-"restored cluster did not start: $(tail -n 3 "$WORK/logs/$key.server.log" | tr '\n' ' ')"}
		log "FAILED: $key: restored cluster did not start"
		stop_pg "$dir"
		RPGDATA=
		return 0
	fi
	n=$(sql "SELECT count(*) FROM pgbench_accounts" "$p" 2>>"$WORK/logs/$key.server.log" || echo error)
	stop_pg "$dir"
	RPGDATA=
	if [[ $n == "${R[rows]}" ]]; then
		R[verify.$key]="ok ($n rows)"
	else
		R[verify.$key]="**$n rows, want ${R[rows]}**"
		F[$key.restore]=${F[$key.restore]:-"restored cluster: $n rows in pgbench_accounts, want ${R[rows]}"}
	fi
	log "    $key restore verified: ${R[verify.$key]}"
}

run_bulwark() {
	local r=$1 key=bw.$1 repo=s3://bulwark-$1/bench dst=$WORK/restore/bw.$1
	log "run $r: bulwark"
	bw repo init --repo "$repo" >>"$WORK/logs/setup.log" 2>&1 ||
		die "bulwark repo init failed: $(tail -n 5 "$WORK/logs/setup.log")"
	timed "$key.backup" bw backup create --repo "$repo" --type full --pgdata "$PGDATA" --db "$DB" --wal copy
	R[bytes.$key]=$(dusb "$S3_DIR/bulwark-$r")
	[[ -n ${F[$key.backup]:-} ]] && return 0
	as_pg mkdir -m 700 -p "$dst"
	timed "$key.restore" bw restore --repo "$repo" --backup latest --pgdata "$dst"
	[[ -z ${F[$key.restore]:-} ]] && verify "$key" "$dst"
	rm -rf "$dst"
}

run_pgbr() {
	local r=$1 key=pgbr.$1 conf dst=$WORK/restore/pgbr.$1
	log "run $r: pgBackRest"
	# pgBackRest does not create buckets: bulwark does, under a prefix
	# removed at once.
	bw repo init --repo "s3://pgbr-$r/tmp" >>"$WORK/logs/setup.log" 2>&1 ||
		die "creating bucket pgbr-$r failed: $(tail -n 5 "$WORK/logs/setup.log")"
	rm -rf "${S3_DIR:?}/pgbr-$r/tmp"
	conf=$(pgbr_conf "$r")
	as_pg pgbackrest --config="$conf" --stanza=bench stanza-create >>"$WORK/logs/setup.log" 2>&1 ||
		die "pgbackrest stanza-create failed: $(tail -n 5 "$WORK/logs/setup.log")"
	set_archive_command "pgbackrest --config=$conf --stanza=bench archive-push %p"
	timed "$key.backup" as_pg pgbackrest --config="$conf" --stanza=bench --type=full backup
	set_archive_command /bin/true
	R[bytes.$key]=$(dusb "$S3_DIR/pgbr-$r")
	[[ -n ${F[$key.backup]:-} ]] && return 0
	as_pg mkdir -m 700 -p "$dst"
	timed "$key.restore" as_pg pgbackrest --config="$conf" --stanza=bench --pg1-path="$dst" restore
	[[ -z ${F[$key.restore]:-} ]] && verify "$key" "$dst"
	rm -rf "$dst"
}

# ---------------------------------------------------------------- report

median() { printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }

# med METRIC TOOL OP: median over the runs; empty when a run failed.
med() {
	local r vals=()
	for ((r = 1; r <= RUNS; r++)); do
		[[ -n ${F[$2.$r.$3]:-} ]] && return 0
		vals+=("${R[$1.$2.$r${4:-}]:-}")
	done
	median "${vals[@]}"
}

human() {
	awk -v b="$1" 'BEGIN {
		if (b == "") { print "?"; exit }
		if (b >= 1073741824) printf "%.2f GiB", b / 1073741824
		else if (b >= 1048576) printf "%.1f MiB", b / 1048576
		else printf "%.0f KiB", b / 1024 }'
}
ratio() { if [[ -n $1 && -n $2 ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; else echo "n/a"; fi; }
v() { if [[ -n $1 ]]; then echo "$1"; else echo "FAILED"; fi; }

goal() {
	if [[ -z $2 || -z $3 ]]; then
		echo "- n/a: $1 (a run failed)"
	elif awk -v a="$2" -v b="$3" 'BEGIN { exit !(a <= b) }'; then
		echo "- PASS: $1: bulwark $2 s ≤ pgBackRest $3 s"
	else
		echo "- **FAIL**: $1: bulwark $2 s > pgBackRest $3 s"
	fi
}

report() {
	local bb pb br pr bzb pzb r k
	bb=$(med time bw backup .backup)
	pb=$(med time pgbr backup .backup)
	br=$(med time bw restore .restore)
	pr=$(med time pgbr restore .restore)
	bzb=$(med bytes bw backup)
	pzb=$(med bytes pgbr backup)
	echo "# Bulwark S3 benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r); work directory on $(df -h --output=source,fstype "$WORK" | tail -1 | tr -s ' ')"
	echo "- S3 server: internal/s3test/s3server (versitygw posix backend) on 127.0.0.1 over HTTPS (self-signed certificate, verified by both tools), its data on the same disk."
	echo "- bulwark: commit $REV$( ((DIRTY)) && echo " + $DIRTY uncommitted file(s) outside bench/"); defaults (zstd fastest, AES-256-GCM, --jobs $(nproc)), \`backup create --type full --wal copy\`, \`restore --backup latest\`."
	echo "- $(pgbackrest version): repo1-type=s3, uri-style path, compress-type=zst level 3, repo1-cipher-type=aes-256-cbc, process-max=2, start-fast=y, archive-copy=y (archive_command = archive-push during its backup, so its backup holds its WAL like bulwark's)."
	echo "- PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'): database $(human "${R[dbsize]}") (pgbench -i -s $SCALE, then CHECKPOINT). Runs: $RUNS$( ((RUNS > 1)) && echo " (medians)"), each into fresh buckets; page cache dropped before each timed command."
	echo
	echo "| operation | bulwark (s) | pgBackRest (s) | bulwark / pgBackRest (< 1: bulwark faster) | bulwark bucket | pgBackRest bucket |"
	echo "|---|---|---|---|---|---|"
	echo "| full backup | $(v "$bb") | $(v "$pb") | $(ratio "$bb" "$pb") | $(human "$bzb") | $(human "$pzb") |"
	echo "| restore | $(v "$br") | $(v "$pr") | $(ratio "$br" "$pr") | | |"
	echo
	echo "Bucket: du -sb of the bucket's directory in the S3 server's data directory after the backup (pgBackRest's includes its WAL archive and stanza files; bulwark's its repository metadata)."
	echo
	echo "Restores verified (started on a spare port, SELECT count(*) FROM pgbench_accounts):"
	echo
	for ((r = 1; r <= RUNS; r++)); do
		for k in bw pgbr; do
			echo "- run $r, $([[ $k == bw ]] && echo bulwark || echo pgBackRest): ${R[verify.$k.$r]:-not verified}$([[ -n ${F[$k.$r.backup]:-}${F[$k.$r.restore]:-} ]] && echo " — FAILED: ${F[$k.$r.backup]:-}${F[$k.$r.restore]:-}")"
		done
	done
	echo
	echo "## Goals"
	echo
	goal "full backup at least as fast" "$bb" "$pb"
	goal "restore at least as fast" "$br" "$pr"
	if ((${#NOTES[@]})); then
		echo
		echo "## Notes"
		echo
		for n in "${NOTES[@]}"; do echo "- $n"; done
	fi
}

# ---------------------------------------------------------------- main

main() {
	((EUID == 0)) || die "run as root (PostgreSQL and the tools run as the postgres user through runuser)"
	[[ -x $PG_BIN/postgres && -x $PG_BIN/pgbench ]] || die "missing PostgreSQL 15 in $PG_BIN"
	command -v pgbackrest >/dev/null || die "missing pgbackrest (bash bench/run.sh installs it)"
	command -v openssl >/dev/null || die "missing openssl"
	command -v go >/dev/null || die "missing go (to build the S3 server)"

	WORK=$(mktemp -d "$TMPBASE/bulwark-s3bench.XXXXXX")
	chmod 755 "$WORK"
	chown postgres: "$WORK"
	as_pg mkdir -p "$WORK"/{sock,logs,conf,restore,pgbr/log,pgbr/lock,pgbr/spool}
	S3_DIR=$WORK/s3data
	log "work directory: $WORK"

	local bin=${BULWARK_BIN:-$ROOT/bin/bulwark}
	if [[ ! -x $bin ]]; then
		log "building bin/bulwark"
		(cd "$ROOT" && go build -o bin/bulwark ./cmd/bulwark)
	fi
	install -m 0755 "$bin" "$WORK/bulwark"
	BULWARK=$WORK/bulwark
	REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	DIRTY=$(git -C "$ROOT" status --porcelain -- . ':!bench' 2>/dev/null | wc -l)
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$WORK/password"
	chown postgres: "$WORK/password"
	chmod 600 "$WORK/password"
	S3_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

	start_s3
	make_dataset

	local r t0
	t0=$(now)
	for ((r = 1; r <= RUNS; r++)); do
		run_bulwark "$r"
		run_pgbr "$r"
		rm -rf "${S3_DIR:?}/bulwark-$r" "${S3_DIR:?}/pgbr-$r"
	done
	log "measurements took $(elapsed "$t0" "$(now)") s"

	local out date
	date=$(date +%Y%m%d-%H%M%S)
	mkdir -p "$ROOT/bench/out"
	out=$ROOT/bench/out/s3-$date.md
	report >"$out"
	echo
	cat "$out"
	echo
	cp "$out" "$ROOT/bench/RESULTS-s3.md"
	log "written to $out and bench/RESULTS-s3.md"
}

main "$@"; exit $?
