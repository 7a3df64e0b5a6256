#!/usr/bin/env bash
# bench/run.sh: bulwark against pgBackRest and pg_basebackup, side by side, in
# one run, against the same PostgreSQL 15 server in the same states.
#
# Dataset A is pgbench scale 100 (compresses very well); dataset B is a table of
# random text, numbers and timestamps (compresses about like real tables). For
# each step every tool takes its backup of the same database state, in the
# order bulwark, pgBackRest, pgBackRest bundle+block, pg_basebackup; the
# workload between two steps runs once. Each measured command runs as the
# postgres OS user under /usr/bin/time -v (wall time, peak RSS of the largest
# process) while a sampler sums the RSS of its whole process tree; the page
# cache is dropped before each one when the kernel allows it. Sizes are what
# each step adds to the repository on disk (du -sb).
#
# Prints a Markdown report, writes it to bench/out/results-<date>.md and copies
# it to bench/RESULTS.md. Everything it starts or creates is stopped and
# removed on exit. See bench/README.md.
#
# Environment:
#   BENCH_RUNS    repetitions of each measured backup/restore; medians reported (1)
#   BENCH_SCALE   pgbench scale of dataset A (100, about 1.5 GB)
#   BENCH_TX      pgbench transactions between backups of dataset A (20000)
#   BENCH_B_MB    target heap size of dataset B's table in MiB (1536)
#   BENCH_TMPDIR  where the work directory is made (/var/tmp)
#   BENCH_KEEP    1: keep the work directory (servers are stopped)
#   BULWARK_BIN   bulwark binary to use (default bin/bulwark, built if missing)
#   BULWARK_PG_BIN  PostgreSQL 15 programs (/usr/lib/postgresql/15/bin)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_BIN=${BULWARK_PG_BIN:-/usr/lib/postgresql/15/bin}
RUNS=${BENCH_RUNS:-1}
SCALE=${BENCH_SCALE:-100}
TX=${BENCH_TX:-20000}
B_MB=${BENCH_B_MB:-1536}
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
KEEP=${BENCH_KEEP:-0}

WORK=
PGDATA=
PORT=
DB=
CUR_PID= # measured command running, killed on exit
DROP_OK=1
PGBB=0 # 1 when pgBackRest supports bundle + block incremental
PGBB_BETA=0
PGBR_VERSION=
NOTES=()
REV=unknown
DIRTY=0
BIN_TIME=

# Results, by key "DATASET.OP.TOOL.RUN": wall seconds, max RSS (KiB) from
# time -v, sampled process-tree RSS (KiB), bytes added/written, failure, CPU.
declare -A T=() M=() S=() Z=() F=() C=() # C: CPU seconds (user + system)
# O: CPU seconds the whole machine spent during the command beyond the tool's
# own (our PostgreSQL server's share, and anything else running).
declare -A O=()
# Extra facts by key "DATASET.OP.TOOL.RUN": bulwark new_bytes and stored_size,
# pgBackRest's repository delta; repository size after the step.
declare -A NB=() SB=() PD=() RZ=()
# Dataset facts.
declare -A DS=()

TOOLS=(bw bw3 pgbr pgbb fp tz)
# bw3 is bulwark at zstd level 3 for whole blocks, pgBackRest's compression.
declare -A TOOL_NAME=([bw]=bulwark [bw3]="bulwark zstd:3" [pgbr]=pgBackRest [pgbb]="pgBackRest bundle+block"
	[fp]="pg_basebackup -Fp" [tz]="pg_basebackup -Ft zstd:3")


cleanup() {
	local rc=$?
	set +e
	if [[ -n $CUR_PID ]]; then
		kill "$CUR_PID" 2>/dev/null
		wait "$CUR_PID" 2>/dev/null
	fi
	stop_pg "$PGDATA"
	remove_workdir "$rc" "$KEEP" bench
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- setup

install_missing() {
	local missing=()
	[[ -x $PG_BIN/postgres && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/pgbench ]] ||
		missing+=(postgresql-15)
	[[ -x $PG_BIN/psql && -x $PG_BIN/pg_basebackup ]] || missing+=(postgresql-client-15)
	command -v pgbackrest >/dev/null || missing+=(pgbackrest)
	[[ -x /usr/bin/time ]] || missing+=(time)
	command -v jq >/dev/null || missing+=(jq)
	command -v zstd >/dev/null || missing+=(zstd)
	if ((${#missing[@]} == 0)); then
		log "prerequisites present"
		return
	fi
	log "installing ${missing[*]}"
	# Debian would create and start a "main" cluster: not wanted here.
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/bulwark-no-main-cluster.conf
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}


sql() {
	"$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"
}

drop_caches() {
	sync
	if ((DROP_OK)); then
		if ! (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
			DROP_OK=0
			log "cannot drop the page cache (not permitted): runs start with whatever is cached"
			NOTES+=("The page cache could NOT be dropped (writing /proc/sys/vm/drop_caches was refused): runs started with whatever was cached.")
		fi
	fi
}

dusb() { if [[ -e $1 ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }

# ---------------------------------------------------------------- measuring

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# tree_rss_kb PID: RSS (KiB) summed over PID's descendants, leaving out the
# time and runuser wrappers.
tree_rss_kb() {
	ps -e -o pid=,ppid=,rss=,comm= | awk -v root="$1" '
		{ pp[$1] = $2; rss[$1] = $3; comm[$1] = $4 }
		END {
			for (p in pp) {
				if (comm[p] == "time" || comm[p] == "runuser") continue
				x = p; n = 0
				while (x in pp && x != root && x > 1 && n++ < 64) x = pp[x]
				if (x == root) s += rss[p]
			}
			print s + 0
		}'
}

# busy_ticks: CPU time (USER_HZ ticks) the machine has spent busy since boot.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# measure KEY CMD...: drop the page cache, run CMD as postgres under
# /usr/bin/time -v, record its wall time and peak RSS. A failure is recorded,
# reported and does not stop the benchmark.
measure() {
	local key=$1 tf lf pid max=0 v rc el b0 b1
	shift
	tf=$WORK/logs/$key.time
	lf=$WORK/logs/$key.log
	drop_caches
	b0=$(busy_ticks)
	/usr/bin/time -v -o "$tf" runuser -u postgres -- "$@" >"$lf" 2>&1 &
	pid=$!
	CUR_PID=$pid
	while alive "$pid"; do
		v=$(tree_rss_kb "$pid")
		((v > max)) && max=$v
		sleep 0.2
	done
	if wait "$pid"; then rc=0; else rc=$?; fi
	b1=$(busy_ticks)
	CUR_PID=
	if ((rc != 0)); then
		F[$key]=1
		log "FAILED ($rc): $key: $*"
		sed 's/^/    | /' "$lf" | tail -n 30
		return 0
	fi
	el=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$tf")
	T[$key]=$(awk -v t="$el" 'BEGIN { n = split(t, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; printf "%.2f", s }')
	M[$key]=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tf")
	C[$key]=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ { s += $2 } END { printf "%.2f", s }' "$tf")
	S[$key]=$max
	O[$key]=$(awk -v b="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" -v c="${C[$key]}" 'BEGIN { o = b / hz - c; printf "%.2f", (o > 0) ? o : 0 }')
	log "$(printf '%-22s %8.2f s  peak RSS %6d KiB (tree %6d KiB)  CPU %6.2f s, other CPU %6.2f s' \
		"$key" "${T[$key]}" "${M[$key]}" "$max" "${C[$key]}" "${O[$key]}")"
}

# ---------------------------------------------------------------- tools

bw_repo() { echo "$WORK/repos/$1/${3:-bw}.$2"; } # DATASET RUN [TOOL]
pgbr_conf() { echo "$WORK/conf/$1.$2.$3.conf"; } # DATASET TOOL RUN

# pgbr_setup DATASET TOOL RUN: write the configuration, create the stanza.
pgbr_setup() {
	local conf repo
	conf=$(pgbr_conf "$1" "$2" "$3")
	repo=$WORK/repos/$1/$2.$3
	{
		echo "[global]"
		echo "repo1-path=$repo"
		echo "repo1-retention-full=99"
		echo "compress-type=zst"
		echo "compress-level=3"
		echo "process-max=2"
		echo "start-fast=y"
		# No WAL archive on this server (archive_mode=off): do not wait for one.
		echo "archive-check=n"
		echo "log-path=$WORK/pgbr/log"
		echo "lock-path=$WORK/pgbr/lock"
		echo "spool-path=$WORK/pgbr/spool"
		echo "log-level-console=warn"
		echo "log-level-file=info"
		if [[ $2 == pgbb ]]; then
			echo "repo1-bundle=y"
			echo "repo1-block=y"
			((PGBB_BETA)) && echo "beta=y"
		fi
		echo
		echo "[bench]"
		echo "pg1-path=$PGDATA"
		echo "pg1-port=$PORT"
		echo "pg1-socket-path=$WORK/sock"
		echo "pg1-user=postgres"
	} >"$conf"
	chmod 644 "$conf"
	as_pg pgbackrest --config="$conf" --stanza=bench stanza-create >>"$WORK/logs/pgbackrest-setup.log" 2>&1 ||
		die "pgbackrest stanza-create failed: $(tail -n 5 "$WORK/logs/pgbackrest-setup.log")"
}

# backup_step DATASET OP: every tool backs up the current state (OP is full,
# incr or diff; pg_basebackup takes part in full only).
backup_step() {
	local ds=$1 op=$2 r key repo before after conf t dir
	log "== dataset $ds: $op backups"
	for ((r = 1; r <= RUNS; r++)); do
		# bulwark, with its defaults and at zstd level 3
		for t in bw bw3; do
			local extra=()
			[[ $t == bw3 ]] && extra=(--compress-level 3)
			repo=$(bw_repo "$ds" "$r" "$t")
			key=$ds.$op.$t.$r
			if [[ $op == full ]]; then
				as_pg "$BULWARK" repo init --repo "file://$repo" --password-file "$WORK/password" \
					>>"$WORK/logs/bulwark-init.log" 2>&1 || die "bulwark repo init failed: $(tail -n 5 "$WORK/logs/bulwark-init.log")"
			fi
			before=$(dusb "$repo")
			measure "$key" "$BULWARK" backup create --repo "file://$repo" --password-file "$WORK/password" \
				--pgdata "$PGDATA" --db "$DB" --type "$op" "${extra[@]}"
			after=$(dusb "$repo")
			Z[$key]=$((after - before))
			RZ[$key]=$after
			if [[ -z ${F[$key]:-} ]]; then
				local js
				if js=$(as_pg "$BULWARK" backup list --repo "file://$repo" --password-file "$WORK/password" -o json 2>>"$WORK/logs/bulwark-list.log"); then
					NB[$key]=$(jq -r 'sort_by(.start_time) | .[-1].new_bytes // empty' <<<"$js")
					SB[$key]=$(jq -r 'sort_by(.start_time) | .[-1].stored_size // empty' <<<"$js")
					echo "$js" >"$WORK/logs/$key.list.json"
				fi
			fi
		done

		# pgBackRest, plain and bundle+block
		for t in pgbr pgbb; do
			if [[ $t == pgbb ]] && ((!PGBB)); then continue; fi
			[[ $op == full ]] && pgbr_setup "$ds" "$t" "$r"
			conf=$(pgbr_conf "$ds" "$t" "$r")
			repo=$WORK/repos/$ds/$t.$r
			key=$ds.$op.$t.$r
			before=$(dusb "$repo")
			measure "$key" pgbackrest --config="$conf" --stanza=bench --type="$op" backup
			after=$(dusb "$repo")
			Z[$key]=$((after - before))
			RZ[$key]=$after
			if [[ -z ${F[$key]:-} ]]; then
				PD[$key]=$(as_pg pgbackrest --config="$conf" --stanza=bench info --output=json 2>/dev/null |
					jq -r '.[0].backup[-1].info.repository.delta // empty') || true
			fi
		done

		# pg_basebackup: full only, plain and tar with client-side zstd
		if [[ $op == full ]]; then
			dir=$WORK/pgb/$ds.fp.$r
			key=$ds.full.fp.$r
			measure "$key" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres \
				-D "$dir" -Fp -X stream -c fast
			Z[$key]=$(dusb "$dir")
			if ((r > 1)); then rm -rf "$dir"; fi # run 1's copy is the source of its restores
			dir=$WORK/pgb/$ds.tz.$r
			key=$ds.full.tz.$r
			measure "$key" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres \
				-D "$dir" -Ft -X stream -c fast --compress=client-zstd:3
			Z[$key]=$(dusb "$dir")
			if ((r > 1)); then rm -rf "$dir"; fi
		fi
	done
}

# restore_step DATASET: every tool restores its latest backup into a new
# empty directory.
restore_step() {
	local ds=$1 r key dst t src
	log "== dataset $ds: restores"
	for ((r = 1; r <= RUNS; r++)); do
		for t in "${TOOLS[@]}"; do
			if [[ $t == pgbb ]] && ((!PGBB)); then continue; fi
			key=$ds.restore.$t.$r
			dst=$WORK/restore/$ds.$t.$r
			as_pg mkdir -m 700 -p "$dst"
			case $t in
			bw | bw3)
				measure "$key" "$BULWARK" restore --repo "file://$(bw_repo "$ds" "$r" "$t")" \
					--password-file "$WORK/password" --backup latest --pgdata "$dst"
				;;
			pgbr | pgbb)
				measure "$key" pgbackrest --config="$(pgbr_conf "$ds" "$t" "$r")" --stanza=bench \
					--pg1-path="$dst" restore
				;;
			fp)
				# pg_basebackup -Fp has no restore: a copy, then sync (the
				# other tools fsync what they write).
				src=$WORK/pgb/$ds.fp.1
				as_pg rmdir "$dst"
				measure "$key" bash -c 'cp -a "$1" "$2" && sync -f "$2"' cp "$src" "$dst"
				;;
			tz)
				# Extract base.tar.zst and the WAL (PostgreSQL 15 leaves
				# pg_wal.tar uncompressed with client-zstd), then sync.
				src=$WORK/pgb/$ds.tz.1
				measure "$key" bash -c 'set -e; tar -C "$2" -I zstd -xf "$1/base.tar.zst"; mkdir -p "$2/pg_wal"
					if [[ -f $1/pg_wal.tar.zst ]]; then tar -C "$2/pg_wal" -I zstd -xf "$1/pg_wal.tar.zst"
					else tar -C "$2/pg_wal" -xf "$1/pg_wal.tar"; fi; sync -f "$2"' tar "$src" "$dst"
				;;
			esac
			if [[ -z ${F[$key]:-} ]]; then
				Z[$key]=$(dusb "$dst")
				[[ -f $dst/global/pg_control ]] || NOTES+=("$key: the restored directory has no global/pg_control.")
			fi
			rm -rf "$dst"
		done
	done
}

# workload NAME SQL|pgbench-args: run once, not measured, then checkpoint so
# that no tool pays for the other's dirty buffers.
pgbench_workload() {
	local lf=$WORK/logs/workload-$1.log
	shift
	log "workload: pgbench $*"
	"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres "$@" postgres >"$lf" 2>&1 ||
		die "pgbench $* failed: $(tail -n 5 "$lf")"
	grep -E '^tps' "$lf" | sed 's/^/    /' || true
	sql "CHECKPOINT"
}

# ---------------------------------------------------------------- report

median() { # values... (empty ones ignored)
	printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

# med ARRAY DATASET OP TOOL: median over the runs, empty when any failed or
# none measured.
med() {
	local -n arr=$1
	local r vals=()
	for ((r = 1; r <= RUNS; r++)); do
		[[ -n ${F[$2.$3.$4.$r]:-} ]] && return 0
		vals+=("${arr[$2.$3.$4.$r]:-}")
	done
	median "${vals[@]}"
}

failed() {
	local r
	for ((r = 1; r <= RUNS; r++)); do [[ -n ${F[$1.$2.$3.$r]:-} ]] && return 0; done
	return 1
}

human() { # bytes
	awk -v b="$1" 'BEGIN {
		if (b == "") { print "?"; exit }
		if (b >= 1073741824) printf "%.2f GiB", b / 1073741824
		else if (b >= 1048576) printf "%.1f MiB", b / 1048576
		else printf "%.0f KiB", b / 1024 }'
}

cell() { # DATASET OP TOOL
	local t z m s out
	if failed "$1" "$2" "$3"; then
		echo "FAILED (see log)"
		return
	fi
	t=$(med T "$1" "$2" "$3")
	[[ -z $t ]] && { echo "—"; return; }
	z=$(med Z "$1" "$2" "$3")
	m=$(med M "$1" "$2" "$3")
	s=$(med S "$1" "$2" "$3")
	out="$(printf '%.1f s' "$t") · $(human "$z") · RSS $(human $((m * 1024)))"
	if [[ -n $s ]] && ((s * 10 > m * 11)); then
		out+=" (Σ $(human $((s * 1024))))"
	fi
	echo "$out"
}

ratio() { # a b
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "—"; else printf "%.2f", a / b }'
}

table() { # DATASET OPS...
	local ds=$1 op label t tools=(bw bw3 pgbr) head sep row
	shift
	((PGBB)) && tools+=(pgbb)
	tools+=(fp tz)
	head="| operation |"
	sep="|---|"
	for t in "${tools[@]}"; do
		head+=" ${TOOL_NAME[$t]} (time · size · RSS) |"
		sep+="---|"
	done
	echo "$head bulwark/pgBackRest time | bulwark/pgBackRest size |"
	echo "$sep---|---|"
	for op in "$@"; do
		label=${OPLABEL[$ds.$op]}
		row="| $label |"
		for t in "${tools[@]}"; do row+=" $(cell "$ds" "$op" "$t") |"; done
		row+=" $(ratio "$(med T "$ds" "$op" bw)" "$(med T "$ds" "$op" pgbr)") |"
		row+=" $(ratio "$(med Z "$ds" "$op" bw)" "$(med Z "$ds" "$op" pgbr)") |"
		echo "$row"
	done
	# Repository size after all steps (run 1).
	local last=${LASTOP[$ds]}
	row="| repository after all steps (du) |"
	for t in "${tools[@]}"; do
		case $t in
		bw | bw3 | pgbr | pgbb) row+=" $(human "${RZ[$ds.$last.$t.1]:-}") |" ;;
		*) row+=" — |" ;;
		esac
	done
	row+=" — | $(ratio "${RZ[$ds.$last.bw.1]:-}" "${RZ[$ds.$last.pgbr.1]:-}") |"
	echo "$row"
}

details() { # DATASET OPS...
	local ds=$1 op t c w row tools=(bw pgbr)
	shift
	((PGBB)) && tools+=(pgbb)
	tools+=(fp tz)
	echo
	echo "Stored bytes per backup (run 1): bulwark \`backup list -o json\` new_bytes and stored_size,"
	echo "pgBackRest \`info\` repository delta, and each repository's size (du -sb) after the step:"
	echo
	echo "| backup | bulwark new_bytes | bulwark stored_size | bulwark repo after | pgBackRest delta | pgBackRest repo after | bundle+block delta | bundle+block repo after |"
	echo "|---|---|---|---|---|---|---|---|"
	for op in "$@"; do
		if [[ $op == restore ]]; then continue; fi
		row="| $op | $(human "${NB[$ds.$op.bw.1]:-}") | $(human "${SB[$ds.$op.bw.1]:-}") | $(human "${RZ[$ds.$op.bw.1]:-}") |"
		row+=" $(human "${PD[$ds.$op.pgbr.1]:-}") | $(human "${RZ[$ds.$op.pgbr.1]:-}") |"
		if ((PGBB)); then
			row+=" $(human "${PD[$ds.$op.pgbb.1]:-}") | $(human "${RZ[$ds.$op.pgbb.1]:-}") |"
		else
			row+=" — | — |"
		fi
		echo "$row"
	done
	echo
	echo "CPU time (user + system, all processes of the tool; not the server's) and CPU / wall:"
	echo
	row="| operation |"
	for t in "${tools[@]}"; do row+=" ${TOOL_NAME[$t]} |"; done
	echo "$row"
	echo "|---|$(printf -- '---|%.0s' "${tools[@]}")"
	for op in "$@"; do
		row="| ${OPLABEL[$ds.$op]} |"
		for t in "${tools[@]}"; do
			c=$(med C "$ds" "$op" "$t")
			w=$(med T "$ds" "$op" "$t")
			if [[ -z $c || -z $w ]]; then
				row+=" — |"
			else
				row+=" $(awk -v c="$c" -v w="$w" 'BEGIN { printf "%.1f s (%.1f)", c, (w > 0) ? c / w : 0 }') |"
			fi
		done
		echo "$row"
	done
}

# goal LABEL OK: one line of the goals check.
goal() { if [[ $2 == 1 ]]; then echo "- PASS: $1"; else echo "- **FAIL**: $1"; fi; }

goals() {
	local ds op a b ok peak=0 m
	echo "## Goals"
	echo
	for ds in A B; do
		for op in full restore; do
			for t in bw bw3; do
				a=$(med T "$ds" "$op" "$t")
				b=$(med T "$ds" "$op" pgbr)
				[[ -z $a || -z $b ]] && { echo "- n/a: dataset $ds $op (a run failed)"; continue; }
				ok=$(awk -v a="$a" -v b="$b" 'BEGIN { print (a <= b) ? 1 : 0 }')
				goal "dataset $ds $op: ${TOOL_NAME[$t]} ${a} s ≤ pgBackRest ${b} s" "$ok"
			done
		done
		for op in incr diff; do
			a=$(med Z "$ds" "$op" bw)
			b=$(med Z "$ds" "$op" pgbr)
			[[ -z $a || -z $b ]] && { echo "- n/a: dataset $ds $op size (a run failed)"; continue; }
			ok=$(awk -v a="$a" -v b="$b" 'BEGIN { print (a * 3 <= b) ? 1 : 0 }')
			goal "dataset $ds $op size: bulwark $(human "$a") ≤ ⅓ of pgBackRest $(human "$b")" "$ok"
		done
	done
	for k in "${!M[@]}"; do
		[[ $k == *.bw.* || $k == *.bw3.* ]] || continue
		m=${M[$k]}
		((${S[$k]:-0} > m)) && m=${S[$k]}
		((m > peak)) && peak=$m
	done
	goal "bulwark peak RSS $(human $((peak * 1024))) < 200 MB (all its backups and restores)" \
		"$(((peak * 1024 < 200000000) ? 1 : 0))"
}

# busy_note: name the measurements during which the machine was busy beyond
# the tool (more than half a core on average, leaving out pg_basebackup whose
# work is done by the server's walsender): something else was running.
busy_note() {
	local k list=()
	for k in $(printf '%s\n' "${!O[@]}" | sort); do
		case $k in *.fp.* | *.tz.*) continue ;; esac
		if awk -v o="${O[$k]}" -v t="${T[$k]}" 'BEGIN { exit !(t > 0 && o / t > 0.5) }'; then
			list+=("$k (${O[$k]} s other CPU in ${T[$k]} s)")
		fi
	done
	if ((${#list[@]})); then
		local joined
		joined=$(printf '%s; ' "${list[@]}")
		echo "- **Other CPU activity** during: ${joined%; }. Beyond the tool's own CPU time, the machine was busy more than half a core on average (our PostgreSQL server's checkpoint and backup work, or something else running): treat those numbers with care."
	else
		echo "- No measurement saw more than half a core of CPU activity beyond the tool's own (the server's share included)."
	fi
}

report() {
	local rev=$REV dirty=$DIRTY
	echo "# Bulwark benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r); work directory on $(df -h --output=source,fstype "$WORK" | tail -1 | tr -s ' ')"
	echo "- bulwark: commit $rev$( ((dirty)) && echo " + $dirty uncommitted file(s) outside bench/"), binary built $BIN_TIME, default settings (jobs = $(nproc))"
	echo "- $PGBR_VERSION: compress-type=zst, compress-level=3, process-max=2, start-fast=y, archive-check=n (no WAL archive); bundle+block: $( ((PGBB)) && echo "repo1-bundle=y repo1-block=y$( ((PGBB_BETA)) && echo ' beta=y (block incremental is beta before 2.46)')" || echo "not supported by this version")"
	echo "- PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'): initdb --data-checksums, wal_level=replica, archive_mode=off, autovacuum=off, max_wal_size=4GB; CHECKPOINT after each workload"
	echo "- Runs per measurement: $RUNS$( ((RUNS > 1)) && echo " (medians; each run backs up into its own repositories)"); page cache dropped before each measured command: $( ((DROP_OK)) && echo yes || echo NO)"
	echo "- Cells: wall time · bytes the step added to the repository (du -sb; restores: size of the restored directory) · peak RSS of the largest process (/usr/bin/time -v), with Σ = peak RSS summed over the process tree when it is larger (pgBackRest's local processes)."
	echo
	echo "## Dataset A — pgbench -i -s $SCALE (database ${DS[A.size]}), then pgbench -n -c 1 -t $TX before incr and before diff"
	echo
	table A full incr diff restore
	details A full incr diff restore
	echo
	echo "## Dataset B — table of random text, numbers and timestamps (${DS[B.rows]} rows; heap ${DS[B.heap]}, index ${DS[B.index]}; database ${DS[B.size]}), then UPDATE of 1% of the rows (the newest) before incr, and of another 1% (scattered) before diff"
	echo
	table B full incr diff restore
	details B full incr diff restore
	echo
	goals
	echo
	echo "## Notes"
	echo
	echo "- pgBackRest backups here hold no WAL (archive-check=n, no archive): restoring them needs a WAL archive to become consistent. bulwark and pg_basebackup -X stream include the WAL from start to stop."
	echo "- pg_basebackup has no incremental backup in PostgreSQL 15; its \"restore\" is \`cp -a\` (-Fp) or \`tar -I zstd -x\` (-Ft), each followed by \`sync -f\`. With -Ft --compress=client-zstd:3, PostgreSQL 15 compresses base.tar but leaves pg_wal.tar uncompressed."
	echo "- Restores restore the latest backup of the chain (the diff of each dataset) into a new empty directory."
	busy_note
	local n
	for n in "${NOTES[@]}"; do echo "- $n"; done
}

# ---------------------------------------------------------------- main

main() {
	((EUID == 0)) || die "run as root (PostgreSQL and the tools run as the postgres user through runuser)"
	echo "== disk space"
	df -h "$TMPBASE" "$ROOT"
	local avail
	avail=$(df -k --output=avail "$TMPBASE" | tail -1)
	((avail > 12 * 1024 * 1024 * RUNS || avail > 30 * 1024 * 1024)) ||
		die "not enough space in $TMPBASE: $((avail / 1024 / 1024)) GiB free, want about $((12 * RUNS)) GiB"

	install_missing
	# Timings mean little on a busy machine: say so when it is.
	local b0 busy
	b0=$(busy_ticks)
	sleep 3
	busy=$(awk -v b="$(($(busy_ticks) - b0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", b / hz / 3 }')
	log "machine busy before the start: $busy cores on average over 3 s"
	if awk -v b="$busy" 'BEGIN { exit !(b > 0.3) }'; then
		log "WARNING: the machine is busy ($busy cores): timings will be disturbed"
		NOTES+=("The machine was already busy before the start ($busy cores on average over 3 s).")
	fi
	PGBR_VERSION=$(pgbackrest version)
	log "$PGBR_VERSION"
	if pgbackrest help backup repo-block >/dev/null 2>&1 && pgbackrest help backup repo-bundle >/dev/null 2>&1; then
		PGBB=1
		local v=${PGBR_VERSION##* }
		if awk -v v="$v" 'BEGIN { split(v, a, "."); exit !((a[1] + 0) * 1000 + a[2] < 2046) }'; then
			PGBB_BETA=1
		fi
	else
		NOTES+=("$PGBR_VERSION supports no repo-block (block incremental came in 2.45 beta / 2.46): the bundle+block configuration was skipped.")
	fi

	WORK=$(mktemp -d "$TMPBASE/bulwark-bench.XXXXXX")
	chmod 755 "$WORK"
	chown postgres: "$WORK"
	as_pg mkdir -p "$WORK"/{sock,logs,repos/A,repos/B,conf,pgbr/log,pgbr/lock,pgbr/spool,pgb,restore}
	log "work directory: $WORK"

	local bin=${BULWARK_BIN:-$ROOT/bin/bulwark}
	if [[ ! -x $bin ]]; then
		log "building bin/bulwark"
		(cd "$ROOT" && go build -o bin/bulwark ./cmd/bulwark)
	fi
	install -m 0755 "$bin" "$WORK/bulwark"
	REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	BIN_TIME=$(stat -c '%y' "$bin" | cut -d. -f1)
	DIRTY=$(git -C "$ROOT" status --porcelain -- . ':!bench' 2>/dev/null | wc -l)
	BULWARK=$WORK/bulwark
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$WORK/password"
	chown postgres: "$WORK/password"
	chmod 600 "$WORK/password"

	# ---- server
	PGDATA=$WORK/pgdata
	init_cluster "$PGDATA" </dev/null
	as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/logs/server.log" -w -t 120 start >/dev/null ||
		die "PostgreSQL did not start"
	DB="host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable"
	log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }') on port $PORT, data $PGDATA"

	# ---- dataset A
	declare -gA OPLABEL=(
		[A.full]="full backup"
		[A.incr]="incr backup (after pgbench -t $TX)"
		[A.diff]="diff backup (after 2nd pgbench -t $TX)"
		[A.restore]="restore latest (the diff)"
		[B.full]="full backup"
		[B.incr]="incr backup (after UPDATE of 1% of rows, clustered: the newest ids)"
		[B.diff]="diff backup (after a further UPDATE of 1% of rows, scattered: id % 100 = 0)"
		[B.restore]="restore latest (the diff)"
	)
	declare -gA LASTOP=([A]=diff [B]=diff)

	log "dataset A: pgbench -i -s $SCALE"
	"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres \
		>"$WORK/logs/pgbench-init.log" 2>&1 || die "pgbench -i failed: $(tail -n 5 "$WORK/logs/pgbench-init.log")"
	sql "CHECKPOINT"
	DS[A.size]=$(sql "SELECT pg_size_pretty(pg_database_size('postgres'))")
	log "database size: ${DS[A.size]}"

	backup_step A full
	pgbench_workload A1 -n -c 1 -t "$TX"
	backup_step A incr
	pgbench_workload A2 -n -c 1 -t "$TX"
	backup_step A diff
	restore_step A

	# ---- dataset B
	log "dataset B: dropping pgbench tables, loading a ~${B_MB} MiB table of random data"
	rm -rf "$WORK"/pgb/A.*
	sql "DROP TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"
	local gen="SELECT g AS id,
		md5(random()::text) || ' ' || substr(md5(random()::text), 1, (random() * 40)::int) AS note,
		(random() * 1e6)::numeric(12,2) AS amount,
		now() - random() * interval '3 years' AS at,
		(random() * 1000)::int AS cat"
	sql "CREATE TABLE realistic_probe AS $gen FROM generate_series(1, 200000) g"
	local bpr n
	bpr=$(sql "SELECT pg_relation_size('realistic_probe') / 200000.0")
	sql "DROP TABLE realistic_probe"
	n=$(awk -v b="$bpr" -v mb="$B_MB" 'BEGIN { printf "%d", mb * 1048576 / b }')
	log "about $bpr bytes per row: $n rows"
	sql "CREATE TABLE realistic AS $gen FROM generate_series(1, $n) g"
	sql "ALTER TABLE realistic ADD PRIMARY KEY (id)"
	sql "VACUUM (ANALYZE) realistic"
	sql "CHECKPOINT"
	DS[B.rows]=$n
	DS[B.heap]=$(sql "SELECT pg_size_pretty(pg_relation_size('realistic'))")
	DS[B.index]=$(sql "SELECT pg_size_pretty(pg_indexes_size('realistic'))")
	DS[B.size]=$(sql "SELECT pg_size_pretty(pg_database_size('postgres'))")
	log "table ${DS[B.heap]}, index ${DS[B.index]}, database ${DS[B.size]}"

	backup_step B full
	# Recent rows are the hot ones: 1% of the rows, the newest.
	log "workload: UPDATE realistic SET amount = amount + 1 WHERE id > $n - $n / 100"
	sql "UPDATE realistic SET amount = amount + 1 WHERE id > $n - $n / 100"
	sql "CHECKPOINT"
	backup_step B incr
	# 1% scattered over the whole table touches most heap pages (the new row
	# versions land wherever the free space map finds room) and every leaf
	# of the primary key: at page granularity this is nearly a full change.
	log "workload: UPDATE realistic SET amount = amount + 1 WHERE id % 100 = 0"
	sql "UPDATE realistic SET amount = amount + 1 WHERE id % 100 = 0"
	sql "CHECKPOINT"
	backup_step B diff
	restore_step B

	# ---- report
	local out date
	date=$(date +%Y%m%d-%H%M%S)
	mkdir -p "$ROOT/bench/out"
	out=$ROOT/bench/out/results-$date.md
	report >"$out"
	cp "$out" "$ROOT/bench/RESULTS.md"
	echo
	cat "$out"
	echo
	log "written to $out and bench/RESULTS.md"
	if [[ $KEEP == 1 ]]; then
		log "logs in $WORK/logs"
	fi
}

# One line, read before main runs: an edit of this file during a run cannot
# make bash read the changed bytes after main returns.
main "$@"; exit $?
