#!/usr/bin/env bash
# bench/wal.sh: WAL archiving and streaming under pgbench at full speed.
# bulwark `wal push` (sync and --async) against pgBackRest's archive-push
# (sync and archive-async), in one run, on the same PostgreSQL 15 cluster in
# the same state, then `bulwark wal receive` (asynchronous and synchronous
# standby) with no archive_command.
#
# The cluster (pgbench -i -s BENCH_WAL_SCALE) is made once, stopped and kept
# as a template; every mode starts from a fresh copy of it, so each one sees
# the same data, the same checkpoint position and the same full-page writes.
# In each archive mode `pgbench -n -c 4 -j 2 -T BENCH_WAL_SECONDS` runs at
# full speed while a sampler records every second pg_current_wal_lsn(),
# pg_stat_archiver and the number of .ready files in pg_wal/archive_status
# (the archive backlog); after pgbench, the time until no .ready file is left
# (the drain). The baseline runs the same pgbench with archive_mode on but no
# archive_command: its WAL, every segment ready, is kept as a second template,
# and each archive mode then drains that same backlog on an idle server: the
# archiving capacity, free of pgbench's competition.
#
# Prints a Markdown report, writes it to bench/out/wal-<date>.md and copies it
# to bench/RESULTS-wal.md (tracked: the latest results).
# Everything it starts or creates is stopped and removed on exit. See
# bench/README.md.
#
# Environment:
#   BENCH_RUNS               repetitions of every mode; medians reported (1)
#   BENCH_WAL_SCALE          pgbench scale (50, about 750 MB)
#   BENCH_WAL_SECONDS        pgbench duration per mode (60)
#   BENCH_WAL_CLIENTS        pgbench -c (4)
#   BENCH_WAL_THREADS        pgbench -j (2)
#   BENCH_WAL_CAPACITY       0: skip the capacity test (1; it needs the base mode)
#   BENCH_WAL_DRAIN_MAX      longest wait for a drain, seconds (300)
#   BENCH_WAL_MODES          modes to run, in order (base bw-sync bw-sync-pw bw-async pgbr-sync pgbr-async recv recv-sync)
#
# bulwark opens its repository with a key file (repo key add --new-key-file), as
# docs/wal.md advises for archive_command; bw-sync-pw shows the same push
# opening it with the passphrase (scrypt, ~0.1 s per segment).
#   BENCH_TMPDIR             where the work directory is made (/var/tmp)
#   BENCH_KEEP               1: keep the work directory (servers are stopped)
#   BULWARK_BIN              bulwark binary to use (default bin/bulwark, built if missing)
#   BULWARK_PG_BIN           PostgreSQL 15 programs (/usr/lib/postgresql/15/bin)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_BIN=${BULWARK_PG_BIN:-/usr/lib/postgresql/15/bin}
RUNS=${BENCH_RUNS:-1}
SCALE=${BENCH_WAL_SCALE:-50}
SECS=${BENCH_WAL_SECONDS:-60}
CLIENTS=${BENCH_WAL_CLIENTS:-4}
THREADS=${BENCH_WAL_THREADS:-2}
CAPACITY=${BENCH_WAL_CAPACITY:-1}
DRAIN_MAX=${BENCH_WAL_DRAIN_MAX:-300}
read -r -a MODES <<<"${BENCH_WAL_MODES:-base bw-sync bw-sync-pw bw-async pgbr-sync pgbr-async recv recv-sync}"
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
KEEP=${BENCH_KEEP:-0}

WORK=
PGDATA=
PORT=
DB=
BULWARK=
PGBACKREST=
SEG=16777216 # wal_segment_size, read from the server
SAMPLER_PID=
RECV_PID=
PGBENCH_PID=
PGBR_VERSION=
PG_VERSION=
REV=unknown
DIRTY=0
BIN_TIME=
BACKLOG_N=0 # segments ready in the capacity template (0: none)
NOTES=()
HZ=$(getconf CLK_TCK)

declare -A MODE_NAME=(
	[base]="no archiving (baseline)"
	[bw-sync]="bulwark wal push"
	[bw-sync-pw]="bulwark wal push, passphrase"
	[bw-async]="bulwark wal push --async"
	[pgbr-sync]="pgBackRest archive-push"
	[pgbr-async]="pgBackRest archive-push, archive-async"
	[recv]="bulwark wal receive"
	[recv-sync]="bulwark wal receive --synchronous"
)
# R["metric.mode.run"]: every measured figure. F["mode.run"]: why it failed.
declare -A R=() F=()


sql() {
	"$PG_BIN/psql" -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# busy_ticks: CPU time (USER_HZ ticks) the machine has spent busy since boot.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

ready_count() {
	local d=$PGDATA/pg_wal/archive_status
	find "$d" -maxdepth 1 -name '*.ready' 2>/dev/null | wc -l
}

# our_pids: processes left from this run (the async pushers, a receiver),
# found by the work directory in their command line; not the postmaster.
# The pattern comes on stdin so that grep's own command line lacks it.
our_pids() {
	local pm= f p
	[[ -n $PGDATA && -f $PGDATA/postmaster.pid ]] && pm=$(head -1 "$PGDATA/postmaster.pid")
	for f in $(grep -laF -f /dev/stdin /proc/[0-9]*/cmdline 2>/dev/null <<<"$WORK"); do
		p=${f#/proc/}
		p=${p%/cmdline}
		[[ $p == "$$" || $p == "$BASHPID" || $p == "$pm" ]] && continue
		echo "$p"
	done
}

stop_sampler() {
	if [[ -n $SAMPLER_PID ]]; then
		kill "$SAMPLER_PID" 2>/dev/null || true
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID=
	fi
}

# stop_receiver: SIGTERM, then wait up to 30 s; sets RECV_RC (its exit
# status, or "killed" when it had to be killed).
RECV_RC=
stop_receiver() {
	local i
	RECV_RC=
	[[ -n $RECV_PID ]] || return 0
	kill -TERM "$RECV_PID" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$RECV_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$RECV_PID" 2>/dev/null; then
		kill -KILL "$RECV_PID" 2>/dev/null || true
		wait "$RECV_PID" 2>/dev/null || true
		RECV_RC=killed
	else
		RECV_RC=0
		wait "$RECV_PID" 2>/dev/null || RECV_RC=$?
	fi
	RECV_PID=
}

pg_stop() { stop_pg "$PGDATA"; }

# sampled_pgbench KEY KIND: the mode's pgbench run with the sampler (KIND
# archive or receive) writing $WORK/logs/KEY.samples; S0 and S1 are the
# archiver statistics before and after.
sampled_pgbench() {
	S0=$(archiver_stats)
	sampler "$WORK/logs/$1.samples" "$2" &
	SAMPLER_PID=$!
	pgbench_run "$1"
	S1=$(archiver_stats)
	stop_sampler
}

# kill_leftovers: after the server stopped, end what the archive commands
# left running (both async pushers exit by themselves after a while idle).
kill_leftovers() {
	local p
	for p in $(our_pids); do
		kill -TERM "$p" 2>/dev/null || true
	done
	sleep 0.5
	for p in $(our_pids); do
		kill -KILL "$p" 2>/dev/null || true
	done
}

cleanup() {
	local rc=$?
	set +e
	if [[ -n $PGBENCH_PID ]]; then
		kill "$PGBENCH_PID" 2>/dev/null
		wait "$PGBENCH_PID" 2>/dev/null
	fi
	stop_sampler
	stop_receiver
	pg_stop
	[[ -n $WORK ]] && kill_leftovers
	remove_workdir "$rc" "$KEEP" bench
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- cluster

pg_start() {
	as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/logs/server.log" -w -t 120 start >/dev/null ||
		die "PostgreSQL did not start"
}

# trim_wal: after a clean shutdown only the segment of the last checkpoint's
# redo is needed; drop the recycled ones so that copies stay small.
trim_wal() {
	local keep f
	keep=$(LC_ALL=C "$PG_BIN/pg_controldata" -D "$PGDATA" | sed -n "s/^Latest checkpoint's REDO WAL file: *//p")
	[[ -n $keep ]] || die "pg_controldata: no REDO WAL file"
	for f in "$PGDATA"/pg_wal/[0-9A-F]*; do
		[[ -f $f ]] || continue
		[[ $(basename "$f") == "$keep" ]] || rm -f "$f"
	done
}

# fresh_cluster TEMPLATE: PGDATA becomes a copy of the template.
fresh_cluster() {
	rm -rf "$PGDATA"
	cp -a "$WORK/$1" "$PGDATA"
	sync -f "$PGDATA"
}

# set_conf NAME VALUE: in postgresql.auto.conf (the server is stopped).
set_conf() {
	as_pg tee -a "$PGDATA/postgresql.auto.conf" >/dev/null <<<"$1 = '$2'"
}

make_templates() {
	PGDATA=$WORK/pgdata
	init_cluster "$PGDATA" <<-EOF
		log_line_prefix = '%m [%p] '
		log_checkpoints = on
	EOF
	pg_start
	DB="host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable"
	SEG=$(sql "SELECT setting::bigint * (CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 END) FROM pg_settings WHERE name = 'wal_segment_size'")
	log "PostgreSQL $PG_VERSION on port $PORT; pgbench -i -s $SCALE"
	local t0
	t0=$(now)
	"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres \
		>"$WORK/logs/pgbench-init.log" 2>&1 || die "pgbench -i failed: $(tail -n 5 "$WORK/logs/pgbench-init.log")"
	sql "CHECKPOINT"
	R[dbsize]=$(sql "SELECT pg_size_pretty(pg_database_size('postgres'))")
	log "database ${R[dbsize]} in $(elapsed "$t0" "$(now)") s"
	pg_stop
	trim_wal
	mv "$PGDATA" "$WORK/tmpl"

}

# save_backlog: after the baseline run (server stopped), keep its WAL as the
# capacity test's backlog: the ready segments and the one of the shutdown
# checkpoint; not those recycled for reuse (never written since).
save_backlog() {
	local keep f b
	keep=$(LC_ALL=C "$PG_BIN/pg_controldata" -D "$PGDATA" | sed -n "s/^Latest checkpoint's REDO WAL file: *//p")
	for f in "$PGDATA"/pg_wal/[0-9A-F]*; do
		b=$(basename "$f")
		[[ -f $f && $b != "$keep" && ! -f $PGDATA/pg_wal/archive_status/$b.ready ]] && rm -f "$f"
	done
	BACKLOG_N=$(ready_count)
	log "    capacity backlog: $BACKLOG_N segments ready ($((BACKLOG_N * SEG / 1048576)) MiB)"
	rm -rf "$WORK/tmpl-backlog"
	mv "$PGDATA" "$WORK/tmpl-backlog"
}

# ---------------------------------------------------------------- archivers

# setup_archiver MODE KEY: make the repository (and pgBackRest's stanza)
# for one measurement; prints the archive_command.
setup_archiver() {
	local mode=$1 key=$2 repo=$WORK/repos/$2 conf
	case $mode in
	bw-*)
		as_pg "$BULWARK" repo init --repo "file://$repo" --password-file "$WORK/password" \
			>>"$WORK/logs/setup.log" 2>&1 || die "bulwark repo init failed: $(tail -n 5 "$WORK/logs/setup.log")"
		local secret=$WORK/password
		if [[ $mode != bw-sync-pw ]]; then
			secret=$WORK/keys/$key.key
			as_pg mkdir -p "$WORK/keys"
			as_pg "$BULWARK" repo key add --repo "file://$repo" --password-file "$WORK/password" --new-key-file "$secret" \
				>>"$WORK/logs/setup.log" 2>&1 || die "bulwark repo key add failed: $(tail -n 5 "$WORK/logs/setup.log")"
		fi
		local cmd="BULWARK_REPO=file://$repo BULWARK_REPO_PASSWORD_FILE=$secret $BULWARK wal push"
		if [[ $mode == bw-async ]]; then
			as_pg mkdir -p "$WORK/spool/$key"
			cmd+=" --async --spool-dir $WORK/spool/$key"
		fi
		echo "$cmd %p"
		;;
	pgbr-*)
		conf=$WORK/conf/$key.conf
		{
			echo "[global]"
			echo "repo1-path=$repo"
			echo "repo1-cipher-type=aes-256-cbc"
			echo "repo1-cipher-pass=$(cat "$WORK/password")"
			echo "compress-type=zst"
			echo "log-path=$WORK/pgbr/log"
			echo "lock-path=$WORK/pgbr/lock"
			echo "spool-path=$WORK/pgbr/spool/$key"
			if [[ $mode == pgbr-async ]]; then
				echo "archive-async=y"
				echo "process-max=2"
			fi
			echo
			echo "[bench]"
			echo "pg1-path=$PGDATA"
			echo "pg1-port=$PORT"
			echo "pg1-socket-path=$WORK/sock"
			echo "pg1-user=postgres"
		} >"$conf"
		chown postgres: "$conf"
		chmod 600 "$conf"
		as_pg pgbackrest --config="$conf" --stanza=bench stanza-create >>"$WORK/logs/setup.log" 2>&1 ||
			die "pgbackrest stanza-create failed: $(tail -n 5 "$WORK/logs/setup.log")"
		echo "$PGBACKREST --config=$conf --stanza=bench archive-push %p"
		;;
	*) die "setup_archiver: $mode" ;;
	esac
}

arm() { # archive_command
	sql "ALTER SYSTEM SET archive_command = '$1'"
	sql "SELECT pg_reload_conf()" >/dev/null
}

# archiver_stats: epoch lsn_bytes archived_count failed_count
archiver_stats() {
	sql "SELECT extract(epoch FROM clock_timestamp()), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'),
		archived_count, failed_count FROM pg_stat_archiver" | tr '|' ' '
}

# drain_wait: wait until no .ready file is left; sets DRAIN to the seconds
# waited, or "stalled" (no segment archived for 60 s) or "timeout"
# (DRAIN_MAX). Not in a subshell: a signal is handled at once.
DRAIN=
drain_wait() {
	local t0 t last_ac=-1 last_t ac i=0 s
	t0=$(now)
	last_t=$t0
	while :; do
		if (($(ready_count) == 0)); then
			DRAIN=$(elapsed "$t0" "$(now)")
			return
		fi
		if ((i++ % 20 == 0)); then
			t=$(now)
			s=$(archiver_stats)
			ac=$(awk '{ print $3 }' <<<"$s")
			if [[ $ac != "$last_ac" ]]; then
				last_ac=$ac
				last_t=$t
			elif awk -v a="$last_t" -v b="$t" 'BEGIN { exit !(b - a > 60) }'; then
				DRAIN=stalled
				return
			fi
			if awk -v a="$t0" -v b="$t" -v m="$DRAIN_MAX" 'BEGIN { exit !(b - a > m) }'; then
				DRAIN=timeout
				return
			fi
		fi
		sleep 0.05
	done
}

# warm_up: a little WAL, a segment switch and a checkpoint, alike in every
# mode; with an archiver, wait until it archived that segment (so a broken
# archive_command fails here, not after the run).
warm_up() {
	local d
	sql "CREATE TABLE bench_warm_up (); DROP TABLE bench_warm_up; SELECT pg_switch_wal()" >/dev/null
	sql "CHECKPOINT"
	if [[ ${1:-} == archive ]]; then
		drain_wait
		d=$DRAIN
		[[ $d != stalled && $d != timeout ]] || return 1
	fi
	return 0
}

# ---------------------------------------------------------------- sampling

# sampler FILE archive|receive: one line a second until killed.
sampler() {
	local file=$1 kind=$2 t0 i=0 t q
	if [[ $kind == archive ]]; then
		q="SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'), archived_count, failed_count,
			coalesce(last_archived_wal, '-') FROM pg_stat_archiver"
	else
		q="SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'),
			coalesce((SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::text || '|' ||
				coalesce(round(extract(epoch FROM write_lag) * 1000, 1), 0) || '|' ||
				coalesce(round(extract(epoch FROM flush_lag) * 1000, 1), 0) || '|' || sync_state
				FROM pg_stat_replication WHERE application_name = 'bulwark_receive' LIMIT 1), '-|-|-|gone')"
	fi
	t0=$(now)
	while :; do
		t=$(now)
		echo "$(elapsed "$t0" "$t")|$(sql "$q" 2>/dev/null || echo error)|$(ready_count)" >>"$file"
		i=$((i + 1))
		sleep "$(awk -v t0="$t0" -v i="$i" -v n="$(now)" 'BEGIN { s = t0 + i - n; printf "%.3f", (s > 0) ? s : 0 }')"
	done
}

# pgbench_run KEY: the measured pgbench; sets R[tps.KEY]. In the background
# and waited for, so that a signal is handled at once.
pgbench_run() {
	local key=$1 lf=$WORK/logs/$1.pgbench.log rc=0
	"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -c "$CLIENTS" -j "$THREADS" -T "$SECS" postgres \
		>"$lf" 2>&1 &
	PGBENCH_PID=$!
	wait "$PGBENCH_PID" || rc=$?
	PGBENCH_PID=
	if ((rc != 0)); then
		F[$key]="pgbench failed: $(tail -n 3 "$lf" | tr '\n' ' ')"
		log "FAILED: ${F[$key]}"
	fi
	R[tps.$key]=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$lf" | awk '{ printf "%.0f", $1 }')
	log "    pgbench: tps ${R[tps.$key]:-?}"
}

# ---------------------------------------------------------------- modes

# end_mode KEY: stop the server, end leftovers, free the disk.
end_mode() {
	stop_sampler
	pg_stop
	kill_leftovers
	R[repo.$1]=$(if [[ -d $WORK/repos/$1 ]]; then du -sb "$WORK/repos/$1" | cut -f1; fi)
	if [[ $KEEP != 1 ]]; then
		rm -rf "$WORK/repos/$1" "$WORK/spool/$1" "$WORK/pgbr/spool/$1"
	fi
}

# archive_mode MODE RUN: pgbench at full speed with this archive_command
# (none for base).
run_archive() {
	local mode=$1 key=$1.$2 cmd= s0 s1 s2 sf d t0 t1 l0 l1 a0 a1 a2 f0 f2
	log "== $key: ${MODE_NAME[$mode]}"
	fresh_cluster tmpl
	# The baseline too: archive_mode on, no archive_command (nothing is
	# archived, segments stay ready: the capacity test's backlog).
	set_conf archive_mode on
	set_conf archive_command ''
	pg_start
	if [[ $mode != base ]]; then
		cmd=$(setup_archiver "$mode" "$key")
		arm "$cmd"
		if ! warm_up archive; then
			F[$key]="the archive_command did not archive the warm-up segment (see logs/server.log)"
			log "FAILED: ${F[$key]}"
			tail -n 10 "$WORK/logs/server.log" | sed 's/^/    | /'
			end_mode "$key"
			return 0
		fi
	else
		warm_up
	fi
	sf=$WORK/logs/$key.samples
	sampled_pgbench "$key" archive
	s0=$S0 s1=$S1
	R[end.$key]=$(ready_count)
	if [[ $mode != base ]]; then
		drain_wait
		d=$DRAIN
		R[drain.$key]=$d
	else
		sql "SELECT pg_switch_wal()" >/dev/null
	fi
	s2=$(archiver_stats)
	read -r t0 l0 a0 f0 <<<"$s0"
	read -r t1 l1 a1 _ <<<"$s1"
	read -r _ _ a2 f2 <<<"$s2"
	R[secs.$key]=$(elapsed "$t0" "$t1")
	R[gen.$key]=$(awk -v l="$((l1 - l0))" -v t="${R[secs.$key]}" 'BEGIN { printf "%.2f", l / t / 1048576 }')
	if [[ $mode != base ]]; then
		R[arch.$key]=$(awk -v n="$((a1 - a0))" -v s="$SEG" -v t="${R[secs.$key]}" 'BEGIN { printf "%.2f", n * s / t / 1048576 }')
		R[fail.$key]=$((f2 - f0))
		R[segs.$key]=$((a2 - a0))
		# Backlog: the largest, and its trend (least squares, segments a
		# minute) over the samples.
		R[max.$key]=$(awk -F'|' -v e="${R[end.$key]}" 'NF == 6 { if ($6 > m) m = $6 } END { print ((e > m) ? e : m) + 0 }' "$sf")
		R[trend.$key]=$(awk -F'|' 'NF == 6 { n++; sx += $1; sy += $6; sxx += $1 * $1; sxy += $1 * $6 }
			END { d = n * sxx - sx * sx; printf "%.1f", (n > 2 && d > 0) ? (n * sxy - sx * sy) / d * 60 : 0 }' "$sf")
		log "    WAL $(printf '%s' "${R[gen.$key]}") MiB/s generated, ${R[arch.$key]} MiB/s archived; backlog max ${R[max.$key]}, end ${R[end.$key]}, trend ${R[trend.$key]}/min; drain $d s; failed ${R[fail.$key]}"
		[[ $d == stalled || $d == timeout ]] && NOTES+=("$key: the backlog did not drain after pgbench ($d).")
	else
		log "    WAL ${R[gen.$key]} MiB/s generated"
		if ((CAPACITY)) && [[ $2 == 1 && -z ${F[$key]:-} ]]; then
			pg_stop
			save_backlog
		fi
	fi
	end_mode "$key"
}

# run_capacity MODE RUN: drain the template's backlog on an idle server.
run_capacity() {
	local mode=$1 key=cap.$1.$2 cmd t0 b0 d b1 s0 s1
	log "== $key: ${MODE_NAME[$mode]} drains $BACKLOG_N ready segments, server idle"
	fresh_cluster tmpl-backlog
	pg_start
	cmd=$(setup_archiver "$mode" "$key")
	s0=$(archiver_stats)
	b0=$(busy_ticks)
	arm "$cmd"
	drain_wait
	d=$DRAIN
	b1=$(busy_ticks)
	s1=$(archiver_stats)
	if [[ $d == stalled || $d == timeout ]]; then
		F[$key]="the backlog did not drain ($d)"
		log "FAILED: ${F[$key]}"
		tail -n 10 "$WORK/logs/server.log" | sed 's/^/    | /'
	else
		local n
		n=$(($(awk '{ print $3 }' <<<"$s1") - $(awk '{ print $3 }' <<<"$s0")))
		R[cdrain.$key]=$d
		R[csegs.$key]=$n
		R[crate.$key]=$(awk -v n="$n" -v s="$SEG" -v t="$d" 'BEGIN { printf "%.1f", (t > 0) ? n * s / t / 1048576 : 0 }')
		# CPU seconds of the whole machine per GiB archived (the tool's,
		# PostgreSQL's archiver, and whatever else ran: the server is idle).
		R[ccpu.$key]=$(awk -v b="$((b1 - b0))" -v hz="$HZ" -v n="$n" -v s="$SEG" 'BEGIN { printf "%.2f", (n > 0) ? b / hz / (n * s / 1073741824) : 0 }')
		R[cfail.$key]=$(($(awk '{ print $4 }' <<<"$s1") - $(awk '{ print $4 }' <<<"$s0")))
		log "    $n segments in $d s: ${R[crate.$key]} MiB/s, ${R[ccpu.$key]} CPU s/GiB, failed ${R[cfail.$key]}"
	fi
	end_mode "$key"
}

# run_receive MODE RUN: bulwark wal receive streaming, no archive_command.
run_receive() {
	local mode=$1 key=$1.$2 repo=$WORK/repos/$1.$2 s0 s1 sf i st lf extra=() c t1 l0 l1
	log "== $key: ${MODE_NAME[$mode]}"
	fresh_cluster tmpl
	pg_start
	warm_up
	as_pg "$BULWARK" repo init --repo "file://$repo" --password-file "$WORK/password" \
		>>"$WORK/logs/setup.log" 2>&1 || die "bulwark repo init failed: $(tail -n 5 "$WORK/logs/setup.log")"
	[[ $mode == recv-sync ]] && extra=(--synchronous)
	lf=$WORK/logs/$key.receive.log
	# setpriv execs: $! is the receiver itself, which gets our SIGTERM.
	setpriv --reuid=postgres --regid=postgres --init-groups \
		env HOME="$WORK" BULWARK_REPO_PASSWORD_FILE="$WORK/password" \
		"$BULWARK" wal receive --db "$DB" --repo "file://$repo" "${extra[@]}" >"$lf" 2>&1 &
	RECV_PID=$!
	st=
	for ((i = 0; i < 300; i++)); do
		kill -0 "$RECV_PID" 2>/dev/null || break
		st=$(sql "SELECT state FROM pg_stat_replication WHERE application_name = 'bulwark_receive'")
		[[ $st == streaming ]] && break
		sleep 0.1
	done
	if [[ $st != streaming ]]; then
		F[$key]="the receiver did not stream (state '${st:-none}'): $(tail -n 3 "$lf" | tr '\n' ' ')"
		log "FAILED: ${F[$key]}"
		stop_receiver
		R[rexit.$key]=$RECV_RC
		end_mode "$key"
		return 0
	fi
	if [[ $mode == recv-sync ]]; then
		sql "ALTER SYSTEM SET synchronous_standby_names = 'bulwark_receive'"
		sql "SELECT pg_reload_conf()" >/dev/null
		for ((i = 0; i < 100; i++)); do
			st=$(sql "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'bulwark_receive'")
			[[ $st == sync ]] && break
			sleep 0.1
		done
		if [[ $st != sync ]]; then
			F[$key]="the receiver did not become a synchronous standby (sync_state '${st:-none}')"
			log "FAILED: ${F[$key]}"
			stop_receiver
		R[rexit.$key]=$RECV_RC
			end_mode "$key"
			return 0
		fi
	fi
	sf=$WORK/logs/$key.samples
	sampled_pgbench "$key" receive
	s0=$S0 s1=$S1
	# Catch-up: until the receiver has flushed everything written.
	local t0 caught=
	t0=$(now)
	for ((i = 0; i < DRAIN_MAX * 10; i++)); do
		c=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) FROM pg_stat_replication WHERE application_name = 'bulwark_receive'")
		if [[ -z $c ]]; then
			caught=gone
			break
		fi
		if ((c <= 0)); then
			caught=$(elapsed "$t0" "$(now)")
			break
		fi
		sleep 0.1
	done
	R[catch.$key]=${caught:-timeout}
	stop_receiver
	R[rexit.$key]=$RECV_RC
	read -r t0 l0 _ _ <<<"$s0"
	read -r t1 l1 _ _ <<<"$s1"
	R[secs.$key]=$(elapsed "$t0" "$t1")
	R[gen.$key]=$(awk -v l="$((l1 - l0))" -v t="${R[secs.$key]}" 'BEGIN { printf "%.2f", l / t / 1048576 }')
	# Lag samples: field 3 bytes, 4 write_lag ms, 5 flush_lag ms, 6 sync_state.
	R[gone.$key]=$(awk -F'|' '$6 == "gone" || $2 == "error" { n++ } END { print n + 0 }' "$sf")
	local col
	for col in 3:lagb 5:flag; do
		R[${col#*:}med.$key]=$(awk -F'|' -v c="${col%%:*}" '$c ~ /^[0-9.-]+$/ { print $c }' "$sf" | median)
		R[${col#*:}max.$key]=$(awk -F'|' -v c="${col%%:*}" '$c ~ /^[0-9.-]+$/ { if (!n++ || $c > m) m = $c } END { if (n) print m }' "$sf")
	done
	log "    WAL ${R[gen.$key]} MiB/s; lag median $(human "${R[lagbmed.$key]}") max $(human "${R[lagbmax.$key]}"), flush_lag median ${R[flagmed.$key]:-?} ms; caught up in ${R[catch.$key]} s; receiver exit ${R[rexit.$key]}"
	if [[ ${R[rexit.$key]} != 0 ]]; then
		NOTES+=("$key: the receiver exited with status ${R[rexit.$key]} on SIGTERM (see logs/$key.receive.log).")
	fi
	if ((${R[gone.$key]} > 0)); then
		NOTES+=("$key: in ${R[gone.$key]} of the samples the receiver was not connected.")
	fi
	end_mode "$key"
}

# ---------------------------------------------------------------- report

median() { # values on stdin or as arguments (empty ones ignored)
	if (($#)); then printf '%s\n' "$@"; else cat; fi |
		awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

# med METRIC KEY: median over the runs (KEY = mode, or cap.mode); empty when
# a run failed. Values that are words (timeout) win over numbers.
med() {
	local r v vals=()
	for ((r = 1; r <= RUNS; r++)); do
		[[ -n ${F[$2.$r]:-} ]] && return 0
		v=${R[$1.$2.$r]:-}
		if [[ -n $v && ! $v =~ ^-?[0-9.]+$ ]]; then
			echo "$v"
			return 0
		fi
		vals+=("$v")
	done
	median "${vals[@]}"
}

failed_msg() { # KEY: the first failure of any run
	local r
	for ((r = 1; r <= RUNS; r++)); do
		[[ -n ${F[$1.$r]:-} ]] && { echo "${F[$1.$r]}"; return 0; }
	done
	return 1
}

human() { # bytes
	awk -v b="$1" 'BEGIN {
		if (b == "") { print "?"; exit }
		if (b >= 1073741824) printf "%.2f GiB", b / 1073741824
		else if (b >= 1048576) printf "%.1f MiB", b / 1048576
		else if (b >= 1024) printf "%.0f KiB", b / 1024
		else printf "%d B", b }'
}

ratio() { # a b
	awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "—"; else printf "%.2f", a / b }'
}

v() { if [[ -n ${1:-} ]]; then echo "$1"; else echo "—"; fi; }

has_mode() {
	local m
	for m in "${MODES[@]}"; do [[ $m == "$1" ]] && return 0; done
	return 1
}

# keeps_up MODE: 1 when the backlog ended at 2 segments or fewer and its
# fitted growth over the run (trend × duration) is 2 segments or fewer;
# empty when unknown.
keeps_up() {
	local e t
	e=$(med end "$1")
	t=$(med trend "$1")
	[[ -z $e || -z $t ]] && return 0
	awk -v e="$e" -v t="$t" -v s="$SECS" 'BEGIN { print (e <= 2 && t * s / 60 <= 2) ? 1 : 0 }'
}

archive_table() {
	local m base_tps tps k msg
	base_tps=$(med tps base)
	echo "| mode | pgbench TPS | TPS vs no archiving | WAL generated MiB/s | WAL archived MiB/s (during the run) | backlog max (segments) | backlog at the end | backlog trend (segments/min) | drain after pgbench (s) | failed archive_command | repository / WAL archived | keeps up |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
	for m in base bw-sync bw-sync-pw bw-async pgbr-sync pgbr-async; do
		has_mode "$m" || continue
		if msg=$(failed_msg "$m"); then
			echo "| ${MODE_NAME[$m]} | FAILED: $msg |||||||||||"
			continue
		fi
		tps=$(med tps "$m")
		if [[ $m == base ]]; then
			echo "| ${MODE_NAME[$m]} | $(v "$tps") | 1.00 | $(v "$(med gen "$m")") | — | — | — | — | — | — | — | — |"
			continue
		fi
		local segs repo ku per
		segs=$(med segs "$m")
		repo=$(med repo "$m")
		per=$(awk -v r="$repo" -v n="$segs" -v s="$SEG" 'BEGIN { if (n > 0 && r != "") printf "%.1f%%", 100 * r / (n * s); else print "—" }')
		ku=$(keeps_up "$m")
		case $ku in 1) ku=yes ;; 0) ku="**no**" ;; *) ku="?" ;; esac
		echo "| ${MODE_NAME[$m]} | $(v "$tps") | $(ratio "$tps" "$base_tps") | $(v "$(med gen "$m")") | $(v "$(med arch "$m")") | $(v "$(med max "$m")") | $(v "$(med end "$m")") | $(v "$(med trend "$m")") | $(v "$(med drain "$m")") | $(v "$(med fail "$m")") | $per | $ku |"
	done
}

capacity_table() {
	local m msg
	echo "| mode | segments | drain time (s) | MiB/s | machine CPU s per GiB archived | failed archive_command |"
	echo "|---|---|---|---|---|---|"
	for m in bw-sync bw-sync-pw bw-async pgbr-sync pgbr-async; do
		has_mode "$m" || continue
		if msg=$(failed_msg "cap.$m"); then
			echo "| ${MODE_NAME[$m]} | FAILED: $msg |||||"
			continue
		fi
		echo "| ${MODE_NAME[$m]} | $(v "$(med csegs "cap.$m")") | $(v "$(med cdrain "cap.$m")") | $(v "$(med crate "cap.$m")") | $(v "$(med ccpu "cap.$m")") | $(v "$(med cfail "cap.$m")") |"
	done
}

ratio_table() {
	local b p
	echo "| | archived MiB/s under pgbench | pgbench TPS | capacity MiB/s (idle server) | CPU per GiB (idle server) |"
	echo "|---|---|---|---|---|"
	for b in sync async; do
		has_mode "bw-$b" && has_mode "pgbr-$b" || continue
		p=pgbr-$b
		echo "| bulwark $b / pgBackRest $b | $(ratio "$(med arch "bw-$b")" "$(med arch "$p")") | $(ratio "$(med tps "bw-$b")" "$(med tps "$p")") | $(ratio "$(med crate "cap.bw-$b")" "$(med crate "cap.$p")") | $(ratio "$(med ccpu "cap.bw-$b")" "$(med ccpu "cap.$p")") |"
	done
}

receive_table() {
	local m msg tps a_tps base_tps
	a_tps=$(med tps recv)
	base_tps=$(med tps base)
	echo "| mode | pgbench TPS | TPS vs async receiver | TPS vs no archiving | WAL generated MiB/s | lag median | lag max | flush_lag median (ms) | flush_lag max (ms) | catch-up after pgbench (s) | repository | exit on SIGTERM |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
	for m in recv recv-sync; do
		has_mode "$m" || continue
		if msg=$(failed_msg "$m"); then
			echo "| ${MODE_NAME[$m]} | FAILED: $msg |||||||||||"
			continue
		fi
		tps=$(med tps "$m")
		echo "| ${MODE_NAME[$m]} | $(v "$tps") | $(ratio "$tps" "$a_tps") | $(ratio "$tps" "$base_tps") | $(v "$(med gen "$m")") | $(human "$(med lagbmed "$m")") | $(human "$(med lagbmax "$m")") | $(v "$(med flagmed "$m")") | $(v "$(med flagmax "$m")") | $(v "$(med catch "$m")") | $(human "$(med repo "$m")") | $(v "${R[rexit.$m.1]:-}") |"
	done
}

goal() { if [[ $2 == 1 ]]; then echo "- PASS: $1"; else echo "- **FAIL**: $1"; fi; }

goals() {
	local m b a p ok
	echo "## Goals"
	echo
	for m in bw-sync bw-async; do
		has_mode "$m" || continue
		ok=$(keeps_up "$m")
		if [[ -z $ok ]]; then
			echo "- n/a: ${MODE_NAME[$m]} keeps up (the run failed)"
		else
			goal "${MODE_NAME[$m]} keeps up with pgbench: backlog at the end $(med end "$m") segment(s) ≤ 2, trend $(med trend "$m")/min × ${SECS} s ≤ 2 segments, drained in $(med drain "$m") s" "$ok"
		fi
	done
	for b in sync async; do
		has_mode "bw-$b" && has_mode "pgbr-$b" || continue
		a=$(med arch "bw-$b")
		p=$(med arch "pgbr-$b")
		if [[ -z $a || -z $p ]]; then
			echo "- n/a: bulwark $b vs pgBackRest $b under pgbench (a run failed)"
		else
			# Within one segment over the run: the resolution of the count.
			goal "bulwark $b archives $a MiB/s under pgbench ≥ pgBackRest $b's $p MiB/s (less one segment over the run, the resolution)" \
				"$(awk -v a="$a" -v p="$p" -v s="$SEG" -v t="$SECS" 'BEGIN { print (a >= p - s / t / 1048576) ? 1 : 0 }')"
		fi
		((BACKLOG_N > 0)) || continue
		a=$(med crate "cap.bw-$b")
		p=$(med crate "cap.pgbr-$b")
		if [[ -z $a || -z $p ]]; then
			echo "- n/a: bulwark $b vs pgBackRest $b capacity (a run failed)"
		else
			goal "bulwark $b capacity $a MiB/s ≥ pgBackRest $b's $p MiB/s (draining $BACKLOG_N segments, server idle)" "$(awk -v a="$a" -v p="$p" 'BEGIN { print (a >= p) ? 1 : 0 }')"
		fi
	done
	local lag c
	for m in recv recv-sync; do
		has_mode "$m" || continue
		lag=$(med lagbmax "$m")
		c=$(med catch "$m")
		if [[ -z $lag || -z $c ]]; then
			echo "- n/a: ${MODE_NAME[$m]} keeps up (the run failed)"
			continue
		fi
		goal "${MODE_NAME[$m]} keeps up with pgbench: lag at most $(human "$lag") ≤ 2 segments, caught up $c s after pgbench" \
			"$(awk -v l="$lag" -v c="$c" -v s="$SEG" 'BEGIN { print (l <= 2 * s && c ~ /^[0-9.]+$/) ? 1 : 0 }')"
	done
}

report() {
	local n
	echo "# Bulwark WAL benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r); work directory on $(df -h --output=source,fstype "$WORK" | tail -1 | tr -s ' ')"
	echo "- bulwark: commit $REV$( ((DIRTY)) && echo " + $DIRTY uncommitted file(s) outside bench/"), binary built $BIN_TIME; \`wal push\` with its defaults (--async: --jobs = $(nproc))"
	echo "- $PGBR_VERSION: compress-type=zst (level 3), repo1-cipher-type=aes-256-cbc; async: archive-async=y, process-max=2. bulwark encrypts too (AES-256-GCM)."
	echo "- PostgreSQL $PG_VERSION: wal_level=replica, max_wal_size=4GB, full_page_writes on, autovacuum off, archive_mode on in every mode but the receivers', wal_segment_size $(human "$SEG"); database $(v "${R[dbsize]:-}") (pgbench -i -s $SCALE). Every mode starts from a copy of the same stopped cluster, then a segment switch and a CHECKPOINT."
	echo "- Workload: \`pgbench -n -c $CLIENTS -j $THREADS -T $SECS\` at full speed (no -R), over loopback TCP. Runs per mode: $RUNS$( ((RUNS > 1)) && echo " (medians)")."
	echo
	echo "## archive_command under pgbench"
	echo
	echo "WAL generated: pg_current_wal_lsn() advance / time. WAL archived: segments pg_stat_archiver counted as archived during the run × $(human "$SEG") / time. Backlog: .ready files in pg_wal/archive_status, sampled every second; trend: least-squares slope over the run. Drain: from the end of pgbench until no .ready file is left. \"Keeps up\": backlog at the end ≤ 2 segments, and no steady growth (trend × duration ≤ 2 segments). Repository / WAL archived: repository size (du -sb) over the WAL bytes archived."
	echo
	archive_table
	echo
	if ((BACKLOG_N > 0)); then
		echo "## Archiving capacity: draining a backlog on an idle server"
		echo
		echo "The same $BACKLOG_N segments ($(human $((BACKLOG_N * SEG)))), the WAL of the baseline run (archive_mode on, no archive_command), drained by each mode from the moment its archive_command is set. CPU: everything the machine ran during the drain (the tool, PostgreSQL's archiver, anything else) per GiB archived."
		echo
		capacity_table
		echo
	fi
	if { has_mode bw-sync && has_mode pgbr-sync; } || { has_mode bw-async && has_mode pgbr-async; }; then
		echo "## bulwark / pgBackRest"
		echo
		echo "Above 1 is better for bulwark in the first three columns, below 1 in the last."
		echo
		ratio_table
		echo
	fi
	if has_mode recv || has_mode recv-sync; then
		echo "## bulwark wal receive (streaming, no archive_command)"
		echo
		echo "Lag: pg_current_wal_lsn() − flush_lsn of the receiver in pg_stat_replication, sampled every second; flush_lag as PostgreSQL reports it. --synchronous runs with synchronous_standby_names = 'bulwark_receive', so every commit waits for the receiver's flush: its TPS against the asynchronous receiver's is the cost."
		echo
		receive_table
		echo
	fi
	goals
	echo
	echo "## Notes"
	echo
	echo "- The machine has $(nproc) cores: pgbench, PostgreSQL and the archiver compete for them, so a cheaper archiver shows as more TPS and more WAL, and a faster one as a smaller backlog."
	echo "- A segment counts as archived when PostgreSQL's archiver got success from archive_command. In async modes the background pusher may have stored more segments than that."
	for n in "${NOTES[@]}"; do echo "- $n"; done
}

# ---------------------------------------------------------------- main

main() {
	((EUID == 0)) || die "run as root (PostgreSQL and the tools run as the postgres user through runuser)"
	local m r need=()
	[[ -x $PG_BIN/postgres && -x $PG_BIN/pgbench && -x $PG_BIN/psql ]] || need+=("PostgreSQL 15 in $PG_BIN")
	for m in "${MODES[@]}"; do
		[[ -n ${MODE_NAME[$m]:-} ]] || die "unknown mode $m (BENCH_WAL_MODES)"
		[[ $m == pgbr-* ]] && ! command -v pgbackrest >/dev/null && need+=(pgbackrest)
	done
	((${#need[@]} == 0)) || die "missing: ${need[*]} (bash bench/run.sh installs them)"
	PGBACKREST=$(command -v pgbackrest || echo pgbackrest)
	PGBR_VERSION=$(pgbackrest version 2>/dev/null || echo "pgBackRest (not installed)")
	PG_VERSION=$("$PG_BIN/postgres" --version | awk '{ print $3 }')

	local b0 busy
	b0=$(busy_ticks)
	sleep 3
	busy=$(awk -v b="$(($(busy_ticks) - b0))" -v hz="$HZ" 'BEGIN { printf "%.2f", b / hz / 3 }')
	log "machine busy before the start: $busy cores on average over 3 s"
	if awk -v b="$busy" 'BEGIN { exit !(b > 0.3) }'; then
		log "WARNING: the machine is busy ($busy cores): figures will be disturbed"
		NOTES+=("The machine was already busy before the start ($busy cores on average over 3 s): figures are disturbed.")
	fi

	WORK=$(mktemp -d "$TMPBASE/bulwark-walbench.XXXXXX")
	chmod 755 "$WORK"
	chown postgres: "$WORK"
	as_pg mkdir -p "$WORK"/{sock,logs,repos,conf,spool,pgbr/log,pgbr/lock,pgbr/spool}
	log "work directory: $WORK"

	local bin=${BULWARK_BIN:-$ROOT/bin/bulwark}
	if [[ ! -x $bin ]]; then
		log "building bin/bulwark"
		(cd "$ROOT" && go build -o bin/bulwark ./cmd/bulwark)
	fi
	# A copy: a rebuild during the run does not change what is measured.
	install -m 0755 "$bin" "$WORK/bulwark"
	BULWARK=$WORK/bulwark
	REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	BIN_TIME=$(stat -c '%y' "$bin" | cut -d. -f1)
	DIRTY=$(git -C "$ROOT" status --porcelain -- . ':!bench' 2>/dev/null | wc -l)
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$WORK/password"
	chown postgres: "$WORK/password"
	chmod 600 "$WORK/password"
	if has_mode recv || has_mode recv-sync; then
		"$BULWARK" wal receive --help >/dev/null 2>&1 ||
			NOTES+=("This bulwark binary has no \`wal receive\`: the receiver modes fail.")
	fi

	if ((CAPACITY)) && ! has_mode base; then
		NOTES+=("No capacity test: it drains the WAL of the base mode, which did not run (BENCH_WAL_MODES).")
	fi

	make_templates

	local t_start
	t_start=$(now)
	for ((r = 1; r <= RUNS; r++)); do
		for m in "${MODES[@]}"; do
			case $m in
			recv | recv-sync) run_receive "$m" "$r" ;;
			*) run_archive "$m" "$r" ;;
			esac
		done
		if ((BACKLOG_N > 0)); then
			for m in "${MODES[@]}"; do
				case $m in bw-* | pgbr-*) run_capacity "$m" "$r" ;; esac
			done
		fi
	done
	log "measurements took $(elapsed "$t_start" "$(now)") s"

	local out date
	date=$(date +%Y%m%d-%H%M%S)
	mkdir -p "$ROOT/bench/out"
	out=$ROOT/bench/out/wal-$date.md
	report >"$out"
	echo
	cat "$out"
	echo
	cp "$out" "$ROOT/bench/RESULTS-wal.md"
	log "written to $out and bench/RESULTS-wal.md"
	if [[ $KEEP == 1 ]]; then
		log "logs in $WORK/logs"
	fi
}

# One line, read before main runs: an edit of this file during a run cannot
# make bash read the changed bytes after main returns.
main "$@"; exit $?
