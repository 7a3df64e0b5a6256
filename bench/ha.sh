#!/usr/bin/env bash
# bench/ha.sh: failover benchmark, Patroni against Bulwark, side by side in
# one run: three nodes on 127.0.0.1, the same writer, the same faults.
#
# For every system (patroni-default, patroni-tuned, bulwark), replication
# mode (async, sync) and fault (crash, node-loss), on a three-member cluster
# made once per system and mode, it runs BENCH_HA_RUNS failovers. Each run:
#   1. waits until the cluster is healthy: every agent alive, exactly one
#      primary (in PostgreSQL and on the REST API), both replicas streaming
#      (in sync mode one of them synchronous);
#   2. starts bench/hawriter's writer (one INSERT per transaction, libpq
#      multi-host string with target_session_attrs=read-write, so it finds
#      the primary by itself; reconnects every 20 ms) and its watcher (GET
#      /primary on every node every 50 ms), waits 3 s;
#   3. notes the time and injects the fault on the primary: crash = kill -9
#      of its postmaster (the agent lives), node-loss = kill -9 of agent and
#      postmaster together;
#   4. waits for the first commit acknowledged after the fault, then 3 s more,
#      stops writer and watcher, and runs `hawriter check`: leader_s (fault →
#      the API shows the new primary; for a restart in place that the API
#      never showed, the first commit), client_rto_s (last commit before the
#      fault → first after it), acknowledged commits lost, and the rest;
#   5. heals: restarts a killed agent (Patroni rejoins the old primary with
#      pg_rewind) and waits for health again; an unhealthy cluster is rebuilt.
#
# Prints a Markdown report (medians per system, mode and fault, and the ratio
# Patroni / Bulwark), writes it with every run's JSON to bench/out/ha/DATE/
# and copies it to bench/RESULTS-ha.md. Everything it starts or creates is
# stopped and removed on exit, on success or not.
#
# Environment:
#   BENCH_HA_RUNS           failovers per system, mode and fault; medians reported (5)
#   BENCH_HA_SYSTEMS        comma-separated, in order (patroni-default,patroni-tuned,bulwark)
#   BENCH_HA_MODES          comma-separated (async,sync)
#   BENCH_HA_FAULTS         comma-separated (crash,node-loss)
#   BENCH_HA_FAILOVER_MAX   longest wait for the first commit after a fault, seconds (120)
#   BENCH_HA_HEAL_MAX       longest wait for a healthy cluster, seconds (180)
#   BENCH_TMPDIR            where the work directory is made (/var/tmp)
#   BENCH_KEEP              1: keep the work directory and its logs (processes are stopped)
#   BULWARK_BIN             bulwark binary to use (default bin/bulwark, built if missing)
#   BULWARK_PG_BIN          PostgreSQL 15 programs (/usr/lib/postgresql/15/bin)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_BIN=${BULWARK_PG_BIN:-/usr/lib/postgresql/15/bin}
RUNS=${BENCH_HA_RUNS:-5}
IFS=', ' read -r -a SYSTEMS <<<"${BENCH_HA_SYSTEMS:-patroni-default,patroni-tuned,bulwark}"
IFS=', ' read -r -a MODES <<<"${BENCH_HA_MODES:-async,sync}"
IFS=', ' read -r -a FAULTS <<<"${BENCH_HA_FAULTS:-crash,node-loss}"
FAILOVER_MAX=${BENCH_HA_FAILOVER_MAX:-120}
HEAL_MAX=${BENCH_HA_HEAL_MAX:-180}
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
KEEP=${BENCH_KEEP:-0}

# Patroni's timing, per variant: "ttl loop_wait retry_timeout".
# patroni-default is Patroni's own default. patroni-tuned has Bulwark's
# default ttl of 4 s and loop_wait 1 (the smallest: an integer, in seconds).
# Its retry_timeout is 2, one over Patroni's documented rule loop_wait +
# 2 × retry_timeout ≤ ttl: with retry_timeout 1, Patroni 3.0.2's replicas
# logged "DCS is not accessible" for two minutes after the leader's node was
# lost and never took over (measured), while etcd served. Patroni 3.0.2
# accepts a ttl under its later validator's minimum of 20; etcd's smallest
# lease is 2 s at its default 1 s election timeout, under 4.
declare -A PATRONI_TIMING=([patroni-default]="30 10 10" [patroni-tuned]="4 1 2")

WORK=
OUT=
HAWRITER=
BULWARK=
REV=unknown
NOTES=()
# R["metric|system.mode.fault|run"]: what check measured; F["system.mode.fault|run"]: why a run failed.
declare -A R=() F=()

# The cluster under test: set by cluster_up, read by everything below it.
SYS=
MODE=
CDIR=
CONN=            # multi-host connection string, target_session_attrs=read-write
NODE_SQL=()      # the writer's --node-sql, if not cluster_name
NODES=()
PRIMARY=         # set by healthy
ETCD_PID=
declare -A CONN_OF=() API_OF=() PGDATA_OF=() AGENT_PID=()
WRITER_PID=
WATCH_PID=

# ---------------------------------------------------------------- install

# install_deps: PostgreSQL 15 (scripts/install-deps.sh), then Patroni 3.0.2,
# etcd 3.4 and HAProxy from Debian, with jq and curl, when a Patroni system
# is to run. Idempotent: runs apt-get only when something is missing. The
# packages' own services are stopped and disabled: the benchmark runs its
# etcd on free loopback ports, and no system-wide etcd may stay on 2379.
install_deps() {
	bash "$ROOT/scripts/install-deps.sh"
	local pkgs=() p
	command -v jq >/dev/null || pkgs+=(jq)
	command -v curl >/dev/null || pkgs+=(curl)
	if has_patroni; then
		command -v patroni >/dev/null || pkgs+=(patroni)
		command -v etcd >/dev/null || pkgs+=(etcd-server)
		command -v haproxy >/dev/null || pkgs+=(haproxy)
	fi
	((${#pkgs[@]})) || return 0
	log "installing ${pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >"$WORK/logs/apt.log" 2>&1 ||
		die "apt-get update failed: $(tail -n 5 "$WORK/logs/apt.log")"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$WORK/logs/apt.log" 2>&1 ||
		die "apt-get install ${pkgs[*]} failed: $(tail -n 5 "$WORK/logs/apt.log")"
	for p in "${pkgs[@]}"; do
		case $p in
		etcd-server) stop_service etcd ;;
		haproxy | patroni) stop_service "$p" ;;
		esac
	done
	if (exec 3<>/dev/tcp/127.0.0.1/2379) 2>/dev/null; then
		die "something still listens on 127.0.0.1:2379 after installing etcd-server: stop it"
	fi
}

# stop_service NAME: stop a service a package may have started, and keep it
# from starting at boot.
stop_service() {
	if [[ -d /run/systemd/system ]]; then
		systemctl disable --now "$1" >/dev/null 2>&1 || true
	elif [[ -x /etc/init.d/$1 ]]; then
		/etc/init.d/"$1" stop >/dev/null 2>&1 || true
		update-rc.d "$1" disable >/dev/null 2>&1 || true
	fi
}

has_patroni() {
	local s
	for s in "${SYSTEMS[@]}"; do [[ $s == patroni-* ]] && return 0; done
	return 1
}

# ---------------------------------------------------------------- processes

# start_as_pg LOG CMD...: start CMD in the background as the postgres user.
# setpriv and env exec, so $! is CMD's own pid (runuser would stay between).
start_as_pg() {
	local log=$1
	shift
	setpriv --reuid=postgres --regid=postgres --init-groups -- env HOME="$WORK" "$@" >>"$log" 2>&1 &
}

stop_client() {
	stop_pid "$WRITER_PID" 10
	stop_pid "$WATCH_PID" 10
	WRITER_PID= WATCH_PID=
}

cleanup() {
	local rc=$?
	set +eu # nothing may stop the cleanup half-way
	stop_client
	[[ -n $SYS ]] && cluster_down
	local p
	for p in $(our_pids); do kill -KILL "$p" 2>/dev/null; done
	[[ -n $OUT ]] && rmdir "$OUT" 2>/dev/null # only if no run got that far
	remove_workdir "$rc" "$KEEP" bench
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- etcd (Patroni's DCS)

ETCD_PORT=
start_etcd() {
	local dir=$CDIR/etcd peer
	alloc_port ETCD_PORT
	alloc_port peer
	mkdir -p "$dir"
	etcd --name bench --data-dir "$dir/data" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "bench=http://127.0.0.1:$peer" --initial-cluster-state new \
		>"$dir/etcd.log" 2>&1 &
	ETCD_PID=$!
	wait_for 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health" || die "etcd did not start: $(tail -n 5 "$dir/etcd.log")"
}

# ---------------------------------------------------------------- Patroni

# patroni_conf NAME PORT REST: the node's configuration, as JSON (YAML's
# subset: Patroni reads it with yaml.safe_load).
patroni_conf() {
	local name=$1 port=$2 rest=$3 ttl loop retry
	read -r ttl loop retry <<<"${PATRONI_TIMING[$SYS]}"
	# Patroni forces cluster_name to the scope on every node, so the node's
	# name goes into a custom setting, bench.node, which the writer reads.
	jq -n --arg scope "bench-$SYS-$MODE" --arg name "$name" --arg dir "$CDIR/$name" --arg bin "$PG_BIN" \
		--argjson port "$port" --argjson rest "$rest" --argjson etcd "$ETCD_PORT" \
		--argjson ttl "$ttl" --argjson loop "$loop" --argjson retry "$retry" \
		--argjson sync "$([[ $MODE == sync ]] && echo true || echo false)" '{
		scope: $scope, name: $name,
		restapi: {listen: "127.0.0.1:\($rest)", connect_address: "127.0.0.1:\($rest)"},
		etcd3: {hosts: "127.0.0.1:\($etcd)"},
		bootstrap: {
			dcs: {
				ttl: $ttl, loop_wait: $loop, retry_timeout: $retry,
				maximum_lag_on_failover: 1048576, synchronous_mode: $sync,
				postgresql: {
					use_pg_rewind: true, use_slots: true,
					parameters: {wal_level: "replica", hot_standby: "on", wal_log_hints: "on",
						max_wal_senders: 10, max_replication_slots: 10, wal_keep_size: "256MB"}
				}
			},
			initdb: ["data-checksums", {encoding: "UTF8"}, {locale: "C"}]
		},
		postgresql: {
			listen: "127.0.0.1:\($port)", connect_address: "127.0.0.1:\($port)",
			data_dir: "\($dir)/data", bin_dir: $bin, pgpass: "\($dir)/pgpass",
			authentication: {superuser: {username: "postgres", password: "bench"},
				replication: {username: "replicator", password: "bench"}},
			parameters: {"bench.node": $name, unix_socket_directories: $dir,
				logging_collector: "on", log_directory: "\($dir)/pglog", log_filename: "postgresql.log",
				log_line_prefix: "%m [%p] "},
			# Trust on loopback: a benchmark, not a deployment.
			pg_hba: ["local all all trust", "host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"],
			remove_data_directory_on_rewind_failure: true,
			remove_data_directory_on_diverged_timelines: true
		}
	}'
}

patroni_up() {
	local i name port rest hosts=() ports=()
	start_etcd
	NODES=(pg1 pg2 pg3)
	for name in "${NODES[@]}"; do
		alloc_port port
		alloc_port rest
		as_pg mkdir -p "$CDIR/$name"
		patroni_conf "$name" "$port" "$rest" | as_pg tee "$CDIR/$name/patroni.yml" >/dev/null
		CONN_OF[$name]="host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable"
		API_OF[$name]="http://127.0.0.1:$rest"
		PGDATA_OF[$name]=$CDIR/$name/data
		hosts+=(127.0.0.1)
		ports+=("$port")
	done
	CONN="host=$(join , "${hosts[@]}") port=$(join , "${ports[@]}") user=postgres dbname=postgres sslmode=disable"
	CONN+=" target_session_attrs=read-write connect_timeout=1"
	NODE_SQL=(--node-sql "current_setting('bench.node')")
	for name in "${NODES[@]}"; do patroni_start "$name"; done
}

patroni_start() { # NAME
	start_as_pg "$CDIR/$1/patroni.log" patroni "$CDIR/$1/patroni.yml"
	AGENT_PID[$1]=$!
	disown "$!" # a node-loss kills it: no "Killed" notice from bash
}

patroni_agent_pid() { echo "${AGENT_PID[$1]}"; }

# patroni_heal NAME FAULT: restart the agent a node-loss killed; after a
# crash the agent itself restarts or replaces PostgreSQL.
patroni_heal() {
	alive "${AGENT_PID[$1]}" || patroni_start "$1"
}

patroni_down() {
	local name
	# SIGTERM: Patroni stops its PostgreSQL (fast) before it exits.
	for name in "${NODES[@]}"; do kill -TERM "${AGENT_PID[$name]:-}" 2>/dev/null || true; done
	for name in "${NODES[@]}"; do stop_pid "${AGENT_PID[$name]:-}" 60; done
	for name in "${NODES[@]}"; do stop_pg "${PGDATA_OF[$name]:-}"; done
	stop_pid "$ETCD_PID" 10
	ETCD_PID=
}

# ---------------------------------------------------------------- Bulwark
#
# BULWARK HALF. Written against the contract of `bulwark up`, `bulwark down`
# and `bulwark cluster status` while those commands are being written
# (internal/cli): not yet run. The contract:
#   bulwark up --nodes 3 --replication async|sync --dir DIR   starts everything, returns when healthy
#   bulwark up --dir DIR                                      restarts whatever is not running (idempotent)
#   bulwark down --dir DIR                                    stops everything
#   bulwark cluster status --plan DIR/bulwark.yaml -o json    {"members":[{"name","role","state","timeline",
#                                                              "lsn","lag_bytes","sync","api_url","conn"}]}
#   DIR/NAME/agent.pid; DIR/NAME/pgdata/postmaster.pid; cluster_name = the member's name.
# It runs as root, as its author does; it runs the agents as postgres.

bulwark_up() {
	"$BULWARK" up --nodes 3 --replication "$MODE" --dir "$CDIR" >>"$CDIR/bulwark.log" 2>&1 ||
		die "bulwark up failed: $(tail -n 5 "$CDIR/bulwark.log")"
	local json name hosts=() ports=() user
	json=$("$BULWARK" cluster status --plan "$CDIR/bulwark.yaml" -o json 2>>"$CDIR/bulwark.log") ||
		die "bulwark cluster status failed: $(tail -n 5 "$CDIR/bulwark.log")"
	mapfile -t NODES < <(jq -r '.members[].name' <<<"$json")
	((${#NODES[@]} == 3)) || die "bulwark cluster status: ${#NODES[@]} members, want 3"
	for name in "${NODES[@]}"; do
		CONN_OF[$name]=$(jq -r --arg n "$name" '.members[] | select(.name == $n) | .conn' <<<"$json")
		API_OF[$name]=$(jq -r --arg n "$name" '.members[] | select(.name == $n) | .api_url' <<<"$json")
		PGDATA_OF[$name]=$CDIR/$name/pgdata
		hosts+=("$(conn_field "${CONN_OF[$name]}" host)")
		ports+=("$(conn_field "${CONN_OF[$name]}" port)")
	done
	user=$(conn_field "${CONN_OF[${NODES[0]}]}" user)
	CONN="host=$(join , "${hosts[@]}") port=$(join , "${ports[@]}") user=${user:-postgres} dbname=postgres sslmode=disable"
	CONN+=" target_session_attrs=read-write connect_timeout=1"
	NODE_SQL=()
}

bulwark_agent_pid() { cat "$CDIR/$1/agent.pid"; }

bulwark_heal() {
	"$BULWARK" up --dir "$CDIR" >>"$CDIR/bulwark.log" 2>&1 || log "    bulwark up --dir failed: $(tail -n 1 "$CDIR/bulwark.log")"
}

bulwark_down() {
	"$BULWARK" down --dir "$CDIR" >>"$CDIR/bulwark.log" 2>&1 || log "    bulwark down failed: $(tail -n 1 "$CDIR/bulwark.log")"
	local name
	for name in "${NODES[@]}"; do stop_pg "${PGDATA_OF[$name]:-}"; done
}

# conn_field CONNSTR KEY: host, port or user of a key=value or URI
# connection string; empty when absent.
conn_field() {
	local c=$1
	if [[ $c == postgres://* || $c == postgresql://* ]]; then
		c=${c#*://}
		c=${c%%/*}
		case $2 in
		user) [[ $c == *@* ]] && { c=${c%%@*}; echo "${c%%:*}"; } ;;
		host) c=${c#*@}; echo "${c%:*}" ;;
		port) c=${c#*@}; [[ $c == *:* ]] && echo "${c##*:}" || echo 5432 ;;
		esac
		return
	fi
	sed -n "s/.*\(^\| \)$2=\([^ ]*\).*/\2/p" <<<"$c"
}

# ---------------------------------------------------------------- the cluster under test

kind() { case $SYS in patroni-*) echo patroni ;; *) echo "$SYS" ;; esac; }

# cluster_up SYSTEM MODE: a fresh three-member cluster, healthy.
cluster_up() {
	SYS=$1 MODE=$2
	CDIR=$WORK/$SYS-$MODE
	rm -rf "$CDIR"
	mkdir -p "$CDIR"
	[[ $(kind) == bulwark ]] || chown postgres: "$CDIR"
	CONN_OF=() API_OF=() PGDATA_OF=() AGENT_PID=() NODES=()
	"$(kind)_up"
	wait_for "$HEAL_MAX" healthy
}

cluster_down() {
	"$(kind)_down"
	SYS=
}

sql() { # NAME SQL: on one node
	PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "${CONN_OF[$1]}" -c "$2" 2>/dev/null
}

api_primary() { # NAME: its REST API answers 200 on /primary
	[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${API_OF[$1]}/primary") == 200 ]]
}

# healthy: every agent alive, one primary, which alone answers 200 on
# /primary, and both replicas streaming from it (in sync mode one of them
# synchronous). Sets PRIMARY.
healthy() {
	local name pg=() api=() st
	for name in "${NODES[@]}"; do
		alive "$("$(kind)_agent_pid" "$name" 2>/dev/null)" || return 1
		st=$(sql "$name" "SELECT pg_is_in_recovery()") || return 1
		[[ $st == f ]] && pg+=("$name")
		api_primary "$name" && api+=("$name")
	done
	[[ ${#pg[@]} == 1 && ${#api[@]} == 1 && ${pg[0]} == "${api[0]}" ]] || return 1
	st=$(sql "${pg[0]}" "SELECT count(*) FILTER (WHERE state = 'streaming'), count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) FROM pg_stat_replication") || return 1
	[[ ${st%|*} == 2 ]] || return 1
	[[ $MODE != sync || ${st#*|} -ge 1 ]] || return 1
	PRIMARY=${pg[0]}
}

# ---------------------------------------------------------------- one failover

# acked_after FILE T CONN: the writer logged a commit acknowledged after T
# (Unix ns) on a connection after CONN. (A backend of a killed postmaster goes
# on committing for a few milliseconds: those commits are no failover.)
acked_after() {
	tail -n 20 "$1" 2>/dev/null |
		awk -v t="$2" -v c="$3" 'NF == 4 && $2 != "unknown" && $3 > t && $4 > c { found = 1 } END { exit !found }'
}

# writer_conn FILE: the writer's connection of its last logged write.
writer_conn() {
	tail -n 2 "$1" | awk 'NF == 4 { c = $4 } END { print c + 0 }'
}

# run_one FAULT RUN: one failover on the healthy cluster; the results go to
# R and the run's JSON to $OUT.
run_one() {
	local fault=$1 r=$2 key=$SYS.$MODE.$1 old=$PRIMARY name urls=() pm agent conn t_fault json
	local base=$WORK/logs/$SYS-$MODE-$fault-$r table=ha_${fault//-/_}_$r
	for name in "${NODES[@]}"; do urls+=("$name=${API_OF[$name]}"); done
	"$HAWRITER" run --conn "$CONN" --out "$base.acks" --table "$table" "${NODE_SQL[@]}" 2>"$base.writer.log" &
	WRITER_PID=$!
	"$HAWRITER" watch --urls "$(join , "${urls[@]}")" --out "$base.watch" 2>"$base.watch.log" &
	WATCH_PID=$!
	sleep 3
	if ! acked_after "$base.acks" 0 0; then
		F[$key|$r]="the writer committed nothing before the fault"
		stop_client
		return
	fi
	pm=$(head -1 "${PGDATA_OF[$old]}/postmaster.pid")
	agent=$("$(kind)_agent_pid" "$old")
	conn=$(writer_conn "$base.acks")
	# EPOCHREALTIME (µs), not $(date): no fork between the time and the kill.
	t_fault=${EPOCHREALTIME/[.,]/}000
	case $fault in
	crash) kill -KILL "$pm" ;;
	node-loss) kill -KILL "$agent" "$pm" ;;
	esac
	local deadline=$((SECONDS + FAILOVER_MAX))
	until acked_after "$base.acks" "$t_fault" "$conn"; do
		if ((SECONDS >= deadline)); then
			F[$key|$r]="no commit within ${FAILOVER_MAX} s of the fault"
			break
		fi
		sleep 0.05
	done
	sleep 3
	stop_client
	cp "$base.watch" "$base.writer.log" "$OUT/" 2>/dev/null || true
	if ! json=$("$HAWRITER" check --conn "$CONN" --acks "$base.acks" --watch "$base.watch" \
		--fault "$t_fault" --old "$old" --table "$table" 2>"$base.check.log"); then
		F[$key|$r]=${F[$key|$r]:-"check failed: $(tail -n 1 "$base.check.log")"}
		return
	fi
	jq -c --arg s "$SYS" --arg m "$MODE" --arg f "$fault" --argjson r "$r" --arg t "$t_fault" \
		'{system: $s, replication: $m, fault: $f, run: $r, fault_ns: $t} + .' <<<"$json" >"$OUT/$SYS-$MODE-$fault-$r.json"
	local m
	for m in leader_s client_rto_s lost lost_after_fault unknown acked leader_how leader_from after_fault_on_old old_always_200 max_200_nodes leader \
		old_conn_acks_after_fault old_conn_last_ack_s; do
		R[$m|$key|$r]=$(jq -r ".$m // empty" <<<"$json")
	done
	log "    $fault #$r: old $old, leader ${R[leader|$key|$r]:-?} (${R[leader_how|$key|$r]:-?}, ${R[leader_from|$key|$r]:-?}) after ${R[leader_s|$key|$r]:-?} s, client RTO ${R[client_rto_s|$key|$r]:-?} s, lost ${R[lost|$key|$r]}/${R[acked|$key|$r]}, unknown ${R[unknown|$key|$r]}, ${R[old_conn_acks_after_fault|$key|$r]} commits on the old connection after the fault${F[$key|$r]:+; ${F[$key|$r]}}"
}

# heal FAULT: bring the cluster back to three healthy members, rebuilding it
# when that fails.
heal() {
	"$(kind)_heal" "$PRIMARY_BEFORE" "$1"
	wait_for "$HEAL_MAX" healthy && return 0
	log "    not healthy after ${HEAL_MAX} s: rebuilding the cluster"
	cp -r "$CDIR" "$WORK/logs/unhealthy-$SYS-$MODE-$(date +%s)" 2>/dev/null || true
	local s=$SYS m=$MODE
	cluster_down
	cluster_try "$s" "$m"
}

# cluster_try SYSTEM MODE: cluster_up, and once more after a failure.
cluster_try() {
	cluster_up "$1" "$2" && return 0
	log "$1, $2: the cluster did not become healthy in ${HEAL_MAX} s; once more"
	cp -r "$CDIR" "$WORK/logs/failed-$SYS-$MODE-$(date +%s)" 2>/dev/null || true
	cluster_down
	cluster_up "$1" "$2"
}

# fail_rest SYSTEM MODE WHY: every run of SYSTEM and MODE not done yet fails for WHY.
fail_rest() {
	local f r
	for f in "${FAULTS[@]}"; do
		for ((r = 1; r <= RUNS; r++)); do
			[[ -n ${R[acked|$1.$2.$f|$r]:-} || -n ${F[$1.$2.$f|$r]:-} ]] || F[$1.$2.$f|$r]=$3
		done
	done
}

PRIMARY_BEFORE=
measure() { # SYSTEM MODE
	local fault r t0
	t0=$(now)
	log "$1, $2: starting the cluster"
	if ! cluster_try "$1" "$2"; then
		fail_rest "$1" "$2" "the cluster did not become healthy"
		log "$1, $2: the cluster did not become healthy in ${HEAL_MAX} s"
		cluster_down
		return
	fi
	log "$1, $2: healthy in $(elapsed "$t0" "$(now)") s, primary $PRIMARY"
	for fault in "${FAULTS[@]}"; do
		for ((r = 1; r <= RUNS; r++)); do
			PRIMARY_BEFORE=$PRIMARY
			run_one "$fault" "$r"
			if ! heal "$fault"; then
				log "$1, $2: could not rebuild the cluster; skipping the rest"
				fail_rest "$1" "$2" "skipped: the cluster did not heal, nor could it be rebuilt"
				cluster_down
				return
			fi
		done
	done
	cluster_down
	log "$1, $2: done in $(elapsed "$t0" "$(now)") s"
}

# ---------------------------------------------------------------- report

# vals METRIC KEY: the metric of every run that has it
vals() {
	local r
	for ((r = 1; r <= RUNS; r++)); do echo "${R[$1|$2|$r]:-}"; done
}

med() { median $(vals "$1" "$2"); } # METRIC KEY

maxv() { vals "$1" "$2" | awk 'NF' | sort -g | tail -n 1; }

# tally METRIC KEY: "value n/N" for each distinct value, e.g. "failover 5/5"
tally() {
	vals "$1" "$2" | awk -v n="$RUNS" 'NF { c[$0]++ } END { for (v in c) printf "%s%s %d/%d", sep, v, c[v], n; sep = ", " }'
}

ok_runs() { # KEY
	local r n=0
	for ((r = 1; r <= RUNS; r++)); do [[ -z ${F[$1|$r]:-} && -n ${R[acked|$1|$r]:-} ]] && ((n += 1)); done
	echo "$n"
}

ratio() { # a b
	awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "—"; else printf "%.2f", a / b }'
}

v() { if [[ -n ${1:-} ]]; then echo "$1"; else echo "—"; fi; }

f2() { [[ -z $1 ]] || printf '%.2f' "$1"; } # seconds, to 10 ms

results_table() {
	local s m f key always
	echo "| system | replication | fault | runs ok | leader (s) | client RTO (s) | acked lost: median / max (max acked after the fault) | unknown outcome | leader after the fault | old primary's /primary still 200 | commits on the old primary after the new leader (max) | commits on the old connection after the fault: max (latest, s) |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
	for s in "${SYSTEMS[@]}"; do
		for m in "${MODES[@]}"; do
			for f in "${FAULTS[@]}"; do
				key=$s.$m.$f
				always=$(vals old_always_200 "$key" | grep -c true || true)
				echo "| $s | $m | $f | $(ok_runs "$key")/$RUNS | $(v "$(f2 "$(med leader_s "$key")")") | $(v "$(f2 "$(med client_rto_s "$key")")") | $(v "$(med lost "$key")") / $(v "$(maxv lost "$key")") ($(v "$(maxv lost_after_fault "$key")")) | $(v "$(med unknown "$key")") | $(v "$(tally leader_how "$key")") | throughout in $always/$RUNS | $(v "$(maxv after_fault_on_old "$key")") | $(v "$(maxv old_conn_acks_after_fault "$key")") ($(v "$(maxv old_conn_last_ack_s "$key")")) |"
			done
		done
	done
}

ratio_table() {
	local p m f
	has_system bulwark || return 0
	echo "| replication | fault | $(for p in "${SYSTEMS[@]}"; do [[ $p == patroni-* ]] && printf '%s / bulwark: leader | client RTO | ' "$p"; done)"
	echo "|---|---|$(for p in "${SYSTEMS[@]}"; do [[ $p == patroni-* ]] && printf -- '---|---|'; done)"
	for m in "${MODES[@]}"; do
		for f in "${FAULTS[@]}"; do
			printf '| %s | %s | ' "$m" "$f"
			for p in "${SYSTEMS[@]}"; do
				[[ $p == patroni-* ]] || continue
				printf '%s | %s | ' "$(ratio "$(med leader_s "$p.$m.$f")" "$(med leader_s "bulwark.$m.$f")")" \
					"$(ratio "$(med client_rto_s "$p.$m.$f")" "$(med client_rto_s "bulwark.$m.$f")")"
			done
			echo
		done
	done
}

has_system() {
	local s
	for s in "${SYSTEMS[@]}"; do [[ $s == "$1" ]] && return 0; done
	return 1
}

failures() {
	local k
	for k in "${!F[@]}"; do echo "- ${k/|/ run }: ${F[$k]}"; done | sort
}

report() {
	local s n t x
	echo "# Bulwark HA failover benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
	echo "- PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'), fsync on, synchronous_commit on; three nodes on 127.0.0.1, distinct ports"
	if has_patroni; then
		echo "- $(patroni --version), etcd $(etcd --version | awk 'NR == 1 { print $3 }') (one member, loopback, its defaults: 100 ms heartbeat, 1 s election), etcd3 API; use_pg_rewind, use_slots, maximum_lag_on_failover 1 MiB, sync mode = synchronous_mode: true"
		for s in "${SYSTEMS[@]}"; do
			[[ $s == patroni-* ]] || continue
			read -r n t x <<<"${PATRONI_TIMING[$s]}"
			echo "  - $s: ttl $n, loop_wait $t, retry_timeout $x"
		done
	fi
	has_system bulwark && echo "- bulwark: commit $REV (\`bulwark up --nodes 3 --replication async|sync\`)"
	echo "- Runs per system, mode and fault: $RUNS (medians; with an even count the lower one). The cluster is made once per system and mode and healed between runs."
	echo
	echo "## Results"
	echo
	echo "Leader: from the fault to the first /primary poll (every 50 ms) where a node other than the old primary alone answers 200; when the old primary comes back in place, to when /primary shows it again, or, if its /primary never stopped answering 200, to the first commit on it (\"leader after the fault\" says which). Client RTO: the writer's outage (one INSERT per transaction, reconnecting every 20 ms), from its last commit acknowledged on the connection open at the fault to its first on a new connection. That last commit can come after the fault: a backend whose postmaster was killed goes on committing to its local WAL until it notices (last column). Acked lost: commits the writer saw acknowledged that the primary no longer has once the run is over; in brackets, the most of them acknowledged after the fault. Unknown outcome: writes cut off before their acknowledgement (not counted as lost)."
	echo
	results_table
	echo
	echo "## Patroni / Bulwark"
	echo
	if has_system bulwark; then
		echo "Medians of Patroni over medians of Bulwark; above 1: Bulwark is faster."
		echo
		ratio_table
	else
		echo "Bulwark did not run (BENCH_HA_SYSTEMS=${SYSTEMS[*]})."
	fi
	echo
	echo "## Notes"
	echo
	echo "- crash = kill -9 of the primary's postmaster, its agent alive; node-loss = kill -9 of agent and postmaster together (a lost machine as seen from loopback: its ports refuse at once, nothing hangs)."
	if has_patroni; then
		echo "- Patroni's /primary answers 200 whenever the node holds the leader key, whether or not its PostgreSQL runs (patroni/api.py): after a crash it keeps answering 200 while it recovers and restarts PostgreSQL in place (with the key it restarts rather than fails over, primary_start_timeout 300 s), so a proxy that routes on /primary sends clients to a dead server meanwhile, and the leader column comes from the writer."
		echo "- Patroni forces cluster_name to the scope on every node (patroni/postgresql/config.py), so its nodes are told apart by a custom setting, bench.node."
		echo "- HAProxy is installed with Patroni but not used: the writer finds the primary with libpq's multi-host target_session_attrs=read-write for both systems. A proxy routing on /primary would add its check interval × fall count to the client RTO."
	fi
	echo "- Two cores: the writer, three PostgreSQL servers, the agents and etcd share them."
	for n in "${NOTES[@]}"; do echo "- $n"; done
	if ((${#F[@]})); then
		echo
		echo "## Failed runs"
		echo
		failures
	fi
	echo
	echo "Every run's JSON (\`hawriter check\`), watcher log and writer log are in bench/out/ha/$(basename "$OUT")/."
}

# ---------------------------------------------------------------- main

main() {
	((EUID == 0)) || die "run as root (PostgreSQL and the agents run as the postgres user)"
	local s m t0
	for s in "${SYSTEMS[@]}"; do
		[[ $s == bulwark || -n ${PATRONI_TIMING[$s]:-} ]] || die "unknown system $s (BENCH_HA_SYSTEMS)"
	done
	for m in "${MODES[@]}"; do [[ $m == async || $m == sync ]] || die "unknown mode $m (BENCH_HA_MODES)"; done
	for s in "${FAULTS[@]}"; do [[ $s == crash || $s == node-loss ]] || die "unknown fault $s (BENCH_HA_FAULTS)"; done

	WORK=$(mktemp -d "$TMPBASE/bulwark-habench.XXXXXX")
	chmod 755 "$WORK"
	mkdir -p "$WORK/logs"
	log "work directory: $WORK"
	install_deps

	log "building bench/hawriter"
	(cd "$ROOT" && go build -o "$WORK/hawriter" ./bench/hawriter) || die "go build ./bench/hawriter failed"
	HAWRITER=$WORK/hawriter
	if has_system bulwark; then
		local bin=${BULWARK_BIN:-$ROOT/bin/bulwark}
		if [[ ! -x $bin ]]; then
			log "building bin/bulwark"
			(cd "$ROOT" && go build -o bin/bulwark ./cmd/bulwark)
		fi
		# A copy: a rebuild during the run does not change what is measured.
		install -m 0755 "$bin" "$WORK/bulwark"
		BULWARK=$WORK/bulwark
		"$BULWARK" up --help >/dev/null 2>&1 || NOTES+=("This bulwark binary has no \`up\`: the bulwark runs fail.")
	fi
	REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

	local busy
	busy=$(busy_cores 3)
	log "machine busy before the start: $busy cores on average over 3 s"
	if awk -v b="$busy" 'BEGIN { exit !(b > 0.3) }'; then
		log "WARNING: the machine is busy ($busy cores): timings will be disturbed"
		NOTES+=("The machine was already busy before the start ($busy cores on average over 3 s): timings are disturbed.")
	fi

	OUT=$ROOT/bench/out/ha/$(date +%Y%m%d-%H%M%S)
	mkdir -p "$OUT"
	t0=$(now)
	for s in "${SYSTEMS[@]}"; do
		for m in "${MODES[@]}"; do measure "$s" "$m"; done
	done
	log "measurements took $(elapsed "$t0" "$(now)") s"

	report >"$OUT/RESULTS-ha.md"
	echo
	cat "$OUT/RESULTS-ha.md"
	echo
	cp "$OUT/RESULTS-ha.md" "$ROOT/bench/RESULTS-ha.md"
	log "written to $OUT and bench/RESULTS-ha.md"
}

# One line, read before main runs: an edit of this file during a run cannot
# make bash read the changed bytes after main returns.
main "$@"; exit $?
