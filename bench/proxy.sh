#!/usr/bin/env bash
# bench/proxy.sh: `bulwark proxy` against a direct connection and against
# HAProxy with Patroni-style health checks, side by side in one run, on one
# three-node `bulwark up` cluster on 127.0.0.1.
#
# 1. Throughput. pgbench (-c CLIENTS -j THREADS -T SECONDS, scale SCALE) runs
#    the select-only script (-S), the default TPC-B-like script, and -S with a
#    new connection per transaction (-C), each through three paths:
#      direct    the primary's own port;
#      proxy     `bulwark proxy`'s read-write port;
#      haproxy   HAProxy configured as Patroni's documentation does it (a listen
#                section per port, `option httpchk GET /primary`, `http-check
#                expect status 200`, `default-server inter 3s fall 3 rise 2
#                on-marked-down shutdown-sessions`, `check port` = the agent's
#                REST API).
#    BENCH_PROXY_RUNS repetitions; the order of the three paths rotates from
#    one repetition to the next, so each comes first, second and last; a
#    CHECKPOINT on the primary before every measured run. Medians, and the
#    ratios proxy / direct (goal ≥ 0.95) and proxy / HAProxy (goal ≥ 1).
# 2. Reconnection after a failover. On the same cluster (started with
#    --crash-restarts 0: a crashed primary fails over at once), for each fault
#    (kill = kill -9 of the primary's postmaster, its agent alive; switchover
#    = `bulwark cluster switchover`), BENCH_PROXY_FAILOVERS times: three
#    bench/hawriter writers run at once, through the proxy's read-write port,
#    through HAProxy (Patroni's settings) and through HAProxy with the tight
#    checks docs/ha.md suggests (inter 500ms fall 1 rise 1), each with one
#    host:port (one INSERT per transaction, reconnecting every 20 ms), and a
#    watcher polls every node's /primary every 50 ms. After the fault and the
#    first commit of every writer, `hawriter check` gives each writer's gap
#    (client_rto_s: last commit on the connection open at the fault → first
#    commit on a new connection), acknowledged writes lost and commits taken
#    by the old primary after the new leader appeared. Between runs it waits
#    until the cluster is healthy and both proxies route to its primary.
#
# Prints a Markdown report, writes it with every run's output to
# bench/out/proxy/DATE/ and copies it to bench/RESULTS-proxy.md. Everything
# it starts or creates is stopped and removed on exit, on success or not.
#
# Environment:
#   BENCH_PROXY_RUNS             throughput repetitions per workload and path; medians (3)
#   BENCH_PROXY_SECONDS          pgbench -T of -S and TPC-B runs (15)
#   BENCH_PROXY_CONNECT_SECONDS  pgbench -T of the -S -C runs (10)
#   BENCH_PROXY_SCALE            pgbench -i -s (10)
#   BENCH_PROXY_CLIENTS          pgbench -c (8)
#   BENCH_PROXY_THREADS          pgbench -j (2)
#   BENCH_PROXY_WORKLOADS        comma-separated, in order (select,tpcb,select-connect)
#   BENCH_PROXY_FAILOVERS        failovers per fault; medians (5)
#   BENCH_PROXY_FAULTS           comma-separated (kill,switchover)
#   BENCH_PROXY_REPLICATION      bulwark up --replication (async)
#   BENCH_PROXY_HAPROXY_FAST     1: also a HAProxy listen with tight checks in the failovers (1)
#   BENCH_PROXY_FAILOVER_MAX     longest wait for every writer's first commit after a fault, s (60)
#   BENCH_PROXY_HEAL_MAX         longest wait for a healthy cluster, s (90); then a member
#                                that is neither primary nor streaming is re-cloned (cluster
#                                reinit, said in the report) and it waits as long again
#   BENCH_TMPDIR                 where the work directory is made (/var/tmp)
#   BENCH_KEEP                   1: keep the work directory and its logs (processes are stopped)
#   BULWARK_BIN                  bulwark binary to use (default bin/bulwark, built if missing)
#   BULWARK_PG_BIN               PostgreSQL 15 programs (/usr/lib/postgresql/15/bin)
# shellcheck disable=SC2317 # functions run by trap and wait_for
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PG_BIN=${BULWARK_PG_BIN:-/usr/lib/postgresql/15/bin}
RUNS=${BENCH_PROXY_RUNS:-3}
DURATION=${BENCH_PROXY_SECONDS:-15}
CONNECT_DURATION=${BENCH_PROXY_CONNECT_SECONDS:-10}
SCALE=${BENCH_PROXY_SCALE:-10}
CLIENTS=${BENCH_PROXY_CLIENTS:-8}
THREADS=${BENCH_PROXY_THREADS:-2}
IFS=', ' read -r -a WORKLOADS <<<"${BENCH_PROXY_WORKLOADS:-select,tpcb,select-connect}"
FAILOVERS=${BENCH_PROXY_FAILOVERS:-5}
IFS=', ' read -r -a FAULTS <<<"${BENCH_PROXY_FAULTS:-kill,switchover}"
REPLICATION=${BENCH_PROXY_REPLICATION:-async}
HAPROXY_FAST=${BENCH_PROXY_HAPROXY_FAST:-1}
FAILOVER_MAX=${BENCH_PROXY_FAILOVER_MAX:-60}
HEAL_MAX=${BENCH_PROXY_HEAL_MAX:-90}
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
KEEP=${BENCH_KEEP:-0}

# The paths pgbench measures, and the clients of the failovers.
TARGETS=(direct proxy haproxy)
CLIENT_TARGETS=(proxy haproxy)
# HAProxy's server defaults: Patroni's documentation (haproxy.cfg in its
# repository) and the tight variant of docs/ha.md.
HAPROXY_PATRONI="inter 3s fall 3 rise 2 on-marked-down shutdown-sessions"
HAPROXY_TIGHT="inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions"
declare -A LABEL=([direct]="direct" [proxy]="bulwark proxy" [haproxy]="HAProxy (Patroni's checks)" [haproxy-fast]="HAProxy (inter 500ms fall 1 rise 1)")
declare -A WDESC=([select]="select-only (-S)" [tpcb]="TPC-B-like (default)" [select-connect]="select-only, new connection per transaction (-S -C)")

WORK=
OUT=
HAWRITER=
BULWARK=
REV=unknown
NOTES=()
# T["workload|target|run"]: TPS; L[...]: average latency (ms); C[...]: the
# middleman's CPU (cores) during the run; TF[...]: why a run failed.
# R["metric|fault|target|run"]: what check measured; F["fault|run"]: why a failover failed.
declare -A T=() L=() C=() TF=() R=() F=()

CDIR=
CONN=            # multi-host connection string, target_session_attrs=read-write
PGUSER_=postgres # the user of the nodes' connection strings
NODES=()
PRIMARY=         # set by healthy
declare -A CONN_OF=() API_OF=() PGDATA_OF=() PGPORT_OF=() APIPORT_OF=()
PROXY_PID=
PX_RW='' PX_RO='' PX_HTTP=''
HAPROXY_PID=
HA_RW='' HA_RO='' HA_FAST='' HA_STATS=''
CLIENT_PIDS=()
WATCH_PID=
SWITCH_PID=

# cpu_ticks PID: user + system clock ticks of the process (all its threads).
cpu_ticks() {
	[[ -n ${1:-} ]] || { echo 0; return; }
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0
}

# ---------------------------------------------------------------- install

# install_deps: PostgreSQL 15 (scripts/install-deps.sh, with pgbench), then
# HAProxy, jq and curl when missing. HAProxy's own service is stopped: the
# benchmark runs its own on free loopback ports.
install_deps() {
	bash "$ROOT/scripts/install-deps.sh"
	local pkgs=()
	command -v jq >/dev/null || pkgs+=(jq)
	command -v curl >/dev/null || pkgs+=(curl)
	command -v haproxy >/dev/null || pkgs+=(haproxy)
	[[ -x $PG_BIN/pgbench ]] || pkgs+=(postgresql-contrib-15)
	((${#pkgs[@]})) || return 0
	log "installing ${pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >"$WORK/logs/apt.log" 2>&1 ||
		die "apt-get update failed: $(tail -n 5 "$WORK/logs/apt.log")"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$WORK/logs/apt.log" 2>&1 ||
		die "apt-get install ${pkgs[*]} failed: $(tail -n 5 "$WORK/logs/apt.log")"
	if [[ " ${pkgs[*]} " == *" haproxy "* ]]; then
		if [[ -d /run/systemd/system ]]; then
			systemctl disable --now haproxy >/dev/null 2>&1 || true
		elif [[ -x /etc/init.d/haproxy ]]; then
			/etc/init.d/haproxy stop >/dev/null 2>&1 || true
			update-rc.d haproxy disable >/dev/null 2>&1 || true
		fi
	fi
	[[ -x $PG_BIN/pgbench ]] || die "no pgbench in $PG_BIN"
}

# ---------------------------------------------------------------- processes

stop_clients() {
	local p
	for p in "${CLIENT_PIDS[@]}" "$WATCH_PID"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${CLIENT_PIDS[@]}" "$WATCH_PID"; do stop_pid "$p" 10; done
	CLIENT_PIDS=() WATCH_PID=
}

cleanup() {
	local rc=$?
	set +eu # nothing may stop the cleanup half-way
	stop_clients
	stop_pid "$SWITCH_PID" 5
	stop_pid "$PROXY_PID" 10
	stop_pid "$HAPROXY_PID" 10
	if [[ -n $CDIR && -f $CDIR/bulwark.yaml ]]; then
		"$BULWARK" down --dir "$CDIR" >>"$CDIR/bulwark.log" 2>&1
		local name
		for name in "${NODES[@]}"; do stop_pg "${PGDATA_OF[$name]:-}"; done
	fi
	local p
	for p in $(our_pids); do kill -KILL "$p" 2>/dev/null; done
	[[ -n $OUT ]] && rmdir "$OUT" 2>/dev/null # only if no run got that far
	remove_workdir "$rc" "$KEEP" bench
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# conn_to PORT [TIMEOUT]: a libpq connection string to 127.0.0.1:PORT,
# connect_timeout TIMEOUT seconds (2).
conn_to() { echo "host=127.0.0.1 port=$1 user=$PGUSER_ dbname=postgres sslmode=disable connect_timeout=${2:-2}"; }

port_of() { # TARGET: the port pgbench or a writer connects to
	case $1 in
	direct) echo "${PGPORT_OF[$PRIMARY]}" ;;
	proxy) echo "$PX_RW" ;;
	haproxy) echo "$HA_RW" ;;
	haproxy-fast) echo "$HA_FAST" ;;
	esac
}

pid_of() { # TARGET: the middleman's pid, if any
	case $1 in
	proxy) echo "$PROXY_PID" ;;
	haproxy*) echo "$HAPROXY_PID" ;;
	esac
}

psql_at() { # CONNSTR SQL
	PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2" 2>/dev/null
}

sql() { psql_at "${CONN_OF[$1]} sslmode=disable" "$2"; } # NAME SQL: on one node

api_primary() { # NAME: its REST API answers 200 on /primary
	[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${API_OF[$1]}/primary") == 200 ]]
}

# ---------------------------------------------------------------- the cluster

cluster_up() {
	CDIR=$WORK/cluster
	log "bulwark up --nodes 3 --replication $REPLICATION --crash-restarts 0"
	"$BULWARK" up --nodes 3 --replication "$REPLICATION" --crash-restarts 0 --dir "$CDIR" >>"$WORK/logs/bulwark-up.log" 2>&1 ||
		die "bulwark up failed: $(tail -n 5 "$WORK/logs/bulwark-up.log")"
	local json name api
	json=$("$BULWARK" cluster status --plan "$CDIR/bulwark.yaml" -o json 2>>"$WORK/logs/bulwark-up.log") ||
		die "bulwark cluster status failed: $(tail -n 5 "$WORK/logs/bulwark-up.log")"
	mapfile -t NODES < <(jq -r '.members[].name' <<<"$json")
	((${#NODES[@]} == 3)) || die "bulwark cluster status: ${#NODES[@]} members, want 3"
	local hosts=() ports=()
	for name in "${NODES[@]}"; do
		CONN_OF[$name]=$(jq -r --arg n "$name" '.members[] | select(.name == $n) | .conn' <<<"$json")
		API_OF[$name]=$(jq -r --arg n "$name" '.members[] | select(.name == $n) | .api_url' <<<"$json")
		PGDATA_OF[$name]=$CDIR/$name/pgdata
		PGPORT_OF[$name]=$(conn_field "${CONN_OF[$name]}" port)
		api=${API_OF[$name]##*:}
		APIPORT_OF[$name]=${api%%/*}
		[[ -n ${PGPORT_OF[$name]} && -n ${APIPORT_OF[$name]} ]] || die "no ports for $name in cluster status: $json"
		hosts+=(127.0.0.1)
		ports+=("${PGPORT_OF[$name]}")
	done
	local user
	user=$(conn_field "${CONN_OF[${NODES[0]}]}" user)
	PGUSER_=${user:-postgres}
	CONN="host=$(join , "${hosts[@]}") port=$(join , "${ports[@]}") user=$PGUSER_ dbname=postgres sslmode=disable"
	CONN+=" target_session_attrs=read-write connect_timeout=1"
	jq . <<<"$json" >"$OUT/cluster-status.json"
	cp "$CDIR/bulwark.yaml" "$OUT/bulwark.yaml"
}

# healthy: every agent alive, one primary, which alone answers 200 on
# /primary, and both replicas streaming from it. Sets PRIMARY.
healthy() {
	local name pg=() api=() st
	for name in "${NODES[@]}"; do
		alive "$(cat "$CDIR/$name/agent.pid" 2>/dev/null)" || return 1
		st=$(sql "$name" "SELECT pg_is_in_recovery()") || return 1
		[[ $st == f ]] && pg+=("$name")
		api_primary "$name" && api+=("$name")
	done
	[[ ${#pg[@]} == 1 && ${#api[@]} == 1 && ${pg[0]} == "${api[0]}" ]] || return 1
	st=$(sql "${pg[0]}" "SELECT count(*) FILTER (WHERE state = 'streaming') FROM pg_stat_replication") || return 1
	[[ $st == 2 ]] || return 1
	PRIMARY=${pg[0]}
}

# routes_to_primary TARGET: a new connection through TARGET lands on the
# primary, out of recovery.
routes_to_primary() {
	[[ $(psql_at "$(conn_to "$(port_of "$1")")" "SELECT current_setting('cluster_name') || '|' || pg_is_in_recovery()") == "$PRIMARY|false" ]]
}

# haproxy_only_up LISTEN NODE: in HAProxy's statistics, NODE alone is UP in
# LISTEN, every other server DOWN (no server half-way, as "UP 1/3").
haproxy_only_up() {
	curl -fsS --max-time 1 "http://127.0.0.1:$HA_STATS/;csv" |
		awk -F, -v l="$1" -v n="$2" '
			NR == 1 { for (i = 1; i <= NF; i++) if ($i == "status") s = i; next }
			$1 == l && $2 != "FRONTEND" && $2 != "BACKEND" { total++; if ($2 == n && $s == "UP") up++; else if ($s == "DOWN") down++ }
			END { exit !(s && up == 1 && down == total - 1) }'
}

# all_healthy: the cluster is healthy, HAProxy's listens show its primary
# alone UP, and the proxy and HAProxy route new connections to it.
# UNHEALTHY says what was missing at its last failure.
UNHEALTHY=
all_healthy() {
	UNHEALTHY="the cluster (agents, one primary, two streaming replicas)"
	healthy || return 1
	UNHEALTHY="HAProxy's primary listen: $PRIMARY alone UP"
	haproxy_only_up primary "$PRIMARY" || return 1
	UNHEALTHY="HAProxy's primary_fast listen: $PRIMARY alone UP"
	[[ $HAPROXY_FAST != 1 ]] || haproxy_only_up primary_fast "$PRIMARY" || return 1
	UNHEALTHY="the proxy's /health"
	[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PX_HTTP/health") == 200 ]] || return 1
	local t
	for t in proxy haproxy; do
		UNHEALTHY="a connection through $t to the primary $PRIMARY"
		routes_to_primary "$t" || return 1
	done
	UNHEALTHY=
}

# ---------------------------------------------------------------- the proxies

start_proxy() {
	alloc_port PX_RW
	alloc_port PX_RO
	alloc_port PX_HTTP
	"$BULWARK" proxy --plan "$CDIR/bulwark.yaml" --listen-rw "127.0.0.1:$PX_RW" --listen-ro "127.0.0.1:$PX_RO" \
		--http "127.0.0.1:$PX_HTTP" >>"$WORK/logs/proxy.log" 2>&1 &
	PROXY_PID=$!
	wait_for 30 curl -fsS --max-time 1 "http://127.0.0.1:$PX_HTTP/health" ||
		die "bulwark proxy did not become healthy in 30 s: $(tail -n 5 "$WORK/logs/proxy.log")"
}

# haproxy_servers CHECK: one server line per node, its PostgreSQL port
# checked on its agent's API port.
haproxy_servers() {
	local name
	for name in "${NODES[@]}"; do
		printf '    server %s 127.0.0.1:%s maxconn 100 check port %s\n' "$name" "${PGPORT_OF[$name]}" "${APIPORT_OF[$name]}"
	done
}

# haproxy_conf: Patroni's haproxy.cfg (global, defaults, stats, a listen for
# the primary) with its replicas listen from the REST API documentation, on
# our ports; the check is GET /primary (Patroni's sample uses `option
# httpchk`, i.e. OPTIONS /, which Patroni answers like /primary; Bulwark's
# API serves GET and HEAD). primary_fast is the same with docs/ha.md's
# tight checks, for the failovers only.
haproxy_conf() {
	cat <<EOF
global
    maxconn 100

defaults
    log global
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen stats
    mode http
    bind 127.0.0.1:$HA_STATS
    stats enable
    stats uri /

listen primary
    bind 127.0.0.1:$HA_RW
    option httpchk GET /primary
    http-check expect status 200
    default-server $HAPROXY_PATRONI
$(haproxy_servers)

listen replicas
    balance roundrobin
    bind 127.0.0.1:$HA_RO
    option httpchk GET /replica
    http-check expect status 200
    default-server $HAPROXY_PATRONI
$(haproxy_servers)
EOF
	[[ $HAPROXY_FAST == 1 ]] || return 0
	cat <<EOF

listen primary_fast
    bind 127.0.0.1:$HA_FAST
    option httpchk GET /primary
    http-check expect status 200
    default-server $HAPROXY_TIGHT
$(haproxy_servers)
EOF
}

start_haproxy() {
	alloc_port HA_RW
	alloc_port HA_RO
	alloc_port HA_FAST
	alloc_port HA_STATS
	haproxy_conf >"$WORK/haproxy.cfg"
	cp "$WORK/haproxy.cfg" "$OUT/haproxy.cfg"
	haproxy -c -q -f "$WORK/haproxy.cfg" >"$WORK/logs/haproxy.log" 2>&1 || die "haproxy -c: $(tail -n 5 "$WORK/logs/haproxy.log")"
	# -db: in the foreground (no daemon), so $! is HAProxy itself.
	haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/logs/haproxy.log" 2>&1 &
	HAPROXY_PID=$!
	wait_for 30 curl -fsS --max-time 1 "http://127.0.0.1:$HA_STATS/;csv" ||
		die "HAProxy did not start: $(tail -n 5 "$WORK/logs/haproxy.log")"
}

# ---------------------------------------------------------------- throughput

proxy_log_lines() { wc -l <"$WORK/logs/proxy.log"; }

# proxy_closed_since LINE: read-write sessions the proxy's log says it closed
# after line LINE.
proxy_closed_since() {
	tail -n +"$(($1 + 1))" "$WORK/logs/proxy.log" | jq -R 'fromjson? | .closed_rw // 0' | awk '{ n += $1 } END { print n + 0 }'
}

# proxy_topologies_since LINE: the topologies the proxy logged after line LINE,
# as "term T primary P (closed N)", "; "-separated.
proxy_topologies_since() {
	tail -n +"$(($1 + 1))" "$WORK/logs/proxy.log" |
		jq -r -R 'fromjson? | select(.msg == "topology") | "\(.time[11:23]) term \(.term) primary \(if .primary == "" then "none" else .primary end) (closed \(.closed_rw))"' |
		paste -sd ';' | sed 's/;/; /g'
}

# pgbench_args WORKLOAD: pgbench's options for it.
pgbench_args() {
	case $1 in
	select) echo "-S -T $DURATION" ;;
	tpcb) echo "-T $DURATION" ;;
	select-connect) echo "-S -C -T $CONNECT_DURATION" ;;
	*) die "unknown workload $1 (BENCH_PROXY_WORKLOADS)" ;;
	esac
}

# bench_one WORKLOAD TARGET RUN
bench_one() {
	local w=$1 t=$2 r=$3 key="$1|$2|$3" f=$OUT/pgbench-$1-$2-$3.txt pid c0 c1 t0 t1 tps lat args
	read -r -a args <<<"$(pgbench_args "$w")"
	sql "$PRIMARY" CHECKPOINT >/dev/null || true
	pid=$(pid_of "$t")
	local log0
	log0=$(proxy_log_lines)
	c0=$(cpu_ticks "$pid")
	t0=$(now)
	if ! PGSSLMODE=disable "$PG_BIN/pgbench" "${args[@]}" -c "$CLIENTS" -j "$THREADS" "$(conn_to "$(port_of "$t")")" >"$f" 2>&1; then
		TF[$key]="pgbench failed: $(grep -v '^pgbench (' "$f" | tail -n 1)"
		local closed
		closed=$(proxy_closed_since "$log0")
		((closed == 0)) || TF[$key]+=" The proxy closed $closed read-write sessions during the run; its log: $(proxy_topologies_since "$log0")."
		log "    $w via $t #$r: ${TF[$key]}"
		return
	fi
	t1=$(now)
	c1=$(cpu_ticks "$pid")
	tps=$(awk '/^tps = / { print $3; exit }' "$f")
	lat=$(awk '/^latency average = / { print $4; exit }' "$f")
	if [[ -z $tps ]]; then
		TF[$key]="no tps in pgbench's output"
		return
	fi
	# shellcheck disable=SC2034 # T and L are read through tvals' nameref
	T[$key]=$(printf '%.0f' "$tps") L[$key]=$lat
	[[ -z $pid ]] || C[$key]=$(awk -v d="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", d / hz / (b - a) }')
	log "    $w via $t #$r: $(printf '%.0f' "$tps") TPS, latency $lat ms${C[$key]:+, middleman CPU ${C[$key]} cores}"
}

throughput() {
	local r w i n=${#TARGETS[@]} order
	log "pgbench -i -s $SCALE on the primary ($PRIMARY)"
	PGSSLMODE=disable "$PG_BIN/pgbench" -i -q -s "$SCALE" "$(conn_to "$(port_of direct)")" >"$OUT/pgbench-init.txt" 2>&1 ||
		die "pgbench -i failed: $(tail -n 3 "$OUT/pgbench-init.txt")"
	sql "$PRIMARY" "VACUUM ANALYZE" >/dev/null || true
	log "warm-up: 3 s of -S through each path"
	for w in "${TARGETS[@]}"; do
		PGSSLMODE=disable "$PG_BIN/pgbench" -S -T 3 -c "$CLIENTS" -j "$THREADS" "$(conn_to "$(port_of "$w")")" >"$OUT/pgbench-warmup-$w.txt" 2>&1 ||
			die "warm-up through $w failed: $(tail -n 3 "$OUT/pgbench-warmup-$w.txt")"
	done
	for ((r = 1; r <= RUNS; r++)); do
		# Rotate: run r starts with TARGETS[(r-1) mod n].
		order=()
		for ((i = 0; i < n; i++)); do order+=("${TARGETS[$(((r - 1 + i) % n))]}"); done
		log "  repetition $r/$RUNS, order ${order[*]}"
		for w in "${WORKLOADS[@]}"; do
			for i in "${order[@]}"; do bench_one "$w" "$i" "$r"; done
		done
	done
	local before=$PRIMARY
	healthy || true
	[[ $PRIMARY == "$before" ]] || NOTES+=("The primary changed during the throughput runs ($before → $PRIMARY): those numbers are suspect.")
}

# ---------------------------------------------------------------- failovers

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

# failover_one FAULT RUN: one fault, watched by a writer through each of
# CLIENT_TARGETS at once; results in R, each writer's JSON in $OUT.
failover_one() {
	local fault=$1 r=$2 old=$PRIMARY name urls=() t pm t_fault deadline json done_all
	local base=$WORK/logs/fo-$fault-$r
	declare -A conn0=()
	for name in "${NODES[@]}"; do urls+=("$name=${API_OF[$name]}"); done
	CLIENT_PIDS=()
	for t in "${CLIENT_TARGETS[@]}"; do
		"$HAWRITER" run --conn "$(conn_to "$(port_of "$t")" 1)" --out "$base-$t.acks" --table "fo_${fault}_${r}_${t//-/_}" \
			2>"$base-$t.writer.log" &
		CLIENT_PIDS+=("$!")
	done
	"$HAWRITER" watch --urls "$(join , "${urls[@]}")" --out "$base.watch" 2>"$base.watch.log" &
	WATCH_PID=$!
	sleep 3
	for t in "${CLIENT_TARGETS[@]}"; do
		if ! acked_after "$base-$t.acks" 0 0; then
			F[$fault|$r]="the writer through $t committed nothing before the fault"
			stop_clients
			return
		fi
		conn0[$t]=$(writer_conn "$base-$t.acks")
	done
	pm=$(head -1 "${PGDATA_OF[$old]}/postmaster.pid")
	# EPOCHREALTIME (µs), not $(date): no fork between the time and the fault.
	t_fault=${EPOCHREALTIME/[.,]/}000
	case $fault in
	kill) kill -KILL "$pm" ;;
	switchover)
		"$BULWARK" cluster switchover --plan "$CDIR/bulwark.yaml" >"$base.switchover.log" 2>&1 &
		SWITCH_PID=$!
		;;
	esac
	deadline=$((SECONDS + FAILOVER_MAX))
	while :; do
		done_all=1
		for t in "${CLIENT_TARGETS[@]}"; do acked_after "$base-$t.acks" "$t_fault" "${conn0[$t]}" || done_all=0; done
		((done_all)) && break
		if ((SECONDS >= deadline)); then
			F[$fault|$r]="not every writer committed within ${FAILOVER_MAX} s of the fault"
			break
		fi
		sleep 0.05
	done
	sleep 2
	stop_clients
	if [[ -n $SWITCH_PID ]]; then
		wait "$SWITCH_PID" || F[$fault|$r]=${F[$fault|$r]:-"bulwark cluster switchover failed: $(tail -n 1 "$base.switchover.log")"}
		SWITCH_PID=
		cp "$base.switchover.log" "$OUT/fo-$fault-$r.switchover.log"
	fi
	cp "$base.watch" "$OUT/fo-$fault-$r.watch"
	for t in "${CLIENT_TARGETS[@]}"; do
		cp "$base-$t.writer.log" "$OUT/fo-$fault-$r-$t.writer.log"
		if ! json=$("$HAWRITER" check --conn "$CONN" --acks "$base-$t.acks" --watch "$base.watch" \
			--fault "$t_fault" --old "$old" --table "fo_${fault}_${r}_${t//-/_}" 2>"$base-$t.check.log"); then
			F[$fault|$r]=${F[$fault|$r]:-"check of $t failed: $(tail -n 1 "$base-$t.check.log")"}
			continue
		fi
		jq -c --arg f "$fault" --argjson r "$r" --arg t "$t" --arg ns "$t_fault" \
			'{fault: $f, run: $r, client: $t, fault_ns: $ns} + .' <<<"$json" >"$OUT/fo-$fault-$r-$t.json"
		local m
		for m in client_rto_s first_ack_s first_ack_node leader_s leader lost unknown after_fault_on_old acked; do
			R[$m|$fault|$t|$r]=$(jq -r ".$m // empty" <<<"$json")
		done
	done
	local line="    $fault #$r: old $old, new ${R[leader|$fault|proxy|$r]:-?} (API after ${R[leader_s|$fault|proxy|$r]:-?} s); gap:"
	for t in "${CLIENT_TARGETS[@]}"; do line+=" $t ${R[client_rto_s|$fault|$t|$r]:-?} s (lost ${R[lost|$fault|$t|$r]:-?})"; done
	log "$line${F[$fault|$r]:+; ${F[$fault|$r]}}"
}

# heal AFTER: wait until all_healthy; if it does not come, restart what is
# not running (bulwark up --dir), re-clone every member that is neither the
# primary nor a streaming replica (bulwark cluster reinit), say so in the
# report's notes, and wait once more. AFTER names the last fault.
heal() {
	wait_for "$HEAL_MAX" all_healthy && return 0
	local why=$UNHEALTHY json stuck name dir
	dir=$OUT/unhealthy-after-${1// /-}
	mkdir -p "$dir"
	json=$("$BULWARK" cluster status --plan "$CDIR/bulwark.yaml" -o json 2>/dev/null) || json='{"members": []}'
	jq . <<<"$json" >"$dir/cluster-status.json"
	for name in "${NODES[@]}"; do
		tail -n 200 "$CDIR/$name/agent.log" >"$dir/$name.agent.log" 2>/dev/null
		tail -n 200 "$CDIR/$name/pgdata.log" >"$dir/$name.pgdata.log" 2>/dev/null
	done
	"$BULWARK" up --dir "$CDIR" >>"$WORK/logs/bulwark-up.log" 2>&1 || true
	mapfile -t stuck < <(jq -r '.members[] | select(.role != "primary" and (.role != "replica" or .state != "streaming")) | .name' <<<"$json")
	local note="After $1 the cluster was not healthy in ${HEAL_MAX} s (no $why)"
	for name in "${stuck[@]}"; do
		note+="; $name was $(jq -r --arg n "$name" '.members[] | select(.name == $n) | "\(.role) \(.state)"' <<<"$json"), its server log: \"$(grep -E 'FATAL|PANIC' "$CDIR/$name/pgdata.log" 2>/dev/null | tail -n 1 | sed 's/^[^]]*] //')\""
		"$BULWARK" cluster reinit "$name" --plan "$CDIR/bulwark.yaml" >>"$WORK/logs/bulwark-up.log" 2>&1 || true
	done
	((${#stuck[@]})) && note+="; the benchmark ran \`bulwark cluster reinit\` for ${stuck[*]}"
	log "  $note"
	if wait_for "$HEAL_MAX" all_healthy; then
		NOTES+=("$note, and the cluster was healthy again (logs in $(basename "$dir")/).")
		return 0
	fi
	NOTES+=("$note, and it still was not healthy ${HEAL_MAX} s later (no $UNHEALTHY): the runs left were skipped (logs in $(basename "$dir")/).")
	return 1
}

failovers() {
	local fault r ff r2 last="the start"
	for fault in "${FAULTS[@]}"; do
		for ((r = 1; r <= FAILOVERS; r++)); do
			if ! heal "$last"; then
				for ff in "${FAULTS[@]}"; do
					for ((r2 = 1; r2 <= FAILOVERS; r2++)); do
						[[ -n ${R[client_rto_s|$ff|proxy|$r2]:-} || -n ${F[$ff|$r2]:-} ]] || F[$ff|$r2]="skipped: the cluster did not heal"
					done
				done
				return
			fi
			failover_one "$fault" "$r"
			last="$fault #$r"
		done
	done
}

# ---------------------------------------------------------------- report

tvals() { # ARRAY-NAME WORKLOAD TARGET: the values of every run
	local -n arr=$1
	local r
	for ((r = 1; r <= RUNS; r++)); do echo "${arr[$2|$3|$r]:-}"; done
}

rvals() { # METRIC FAULT TARGET
	local r
	for ((r = 1; r <= FAILOVERS; r++)); do echo "${R[$1|$2|$3|$r]:-}"; done
}

# shellcheck disable=SC2046 # one value a line, split on purpose
tmed() { median $(tvals T "$1" "$2"); }
# shellcheck disable=SC2046
rmed() { median $(rvals "$1" "$2" "$3"); }

range() { # values on stdin: "min–max", or empty
	awk 'NF' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s–%s", lo, hi }'
}

ratio() { # a b
	awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "—"; else printf "%.3f", a / b }'
}

v() { if [[ -n ${1:-} ]]; then echo "$1"; else echo "—"; fi; }

f2() { [[ -z ${1:-} ]] || printf '%.2f' "$1"; } # seconds, to 10 ms

int() { [[ -z ${1:-} ]] && echo "—" || printf '%.0f' "$1"; }

# at_least RATIO GOAL: PASS or FAIL
at_least() {
	awk -v a="$1" -v g="$2" 'BEGIN { if (a !~ /^[0-9.]+$/) print "FAIL (not measured)"; else if (a >= g) print "PASS"; else print "FAIL" }'
}

ok_runs() { # WORKLOAD TARGET
	tvals T "$1" "$2" | awk 'NF { n++ } END { print n + 0 }'
}

throughput_table() {
	local w t d p h
	echo "| workload | direct TPS | bulwark proxy TPS | HAProxy TPS | proxy / direct | proxy / HAProxy |"
	echo "|---|---|---|---|---|---|"
	for w in "${WORKLOADS[@]}"; do
		d=$(tmed "$w" direct) p=$(tmed "$w" proxy) h=$(tmed "$w" haproxy)
		printf '| %s | %s | %s | %s | %s | %s |\n' "${WDESC[$w]}" \
			"$(int "$d") ($(tvals T "$w" direct | awk 'NF { printf "%.0f\n", $1 }' | range))" \
			"$(int "$p") ($(tvals T "$w" proxy | awk 'NF { printf "%.0f\n", $1 }' | range))" \
			"$(int "$h") ($(tvals T "$w" haproxy | awk 'NF { printf "%.0f\n", $1 }' | range))" \
			"$(ratio "$p" "$d")" "$(ratio "$p" "$h")"
	done
}

detail_table() {
	local w t r row
	echo "| workload | path | runs ok | TPS per run | latency per run (ms) | middleman CPU per run (cores) |"
	echo "|---|---|---|---|---|---|"
	for w in "${WORKLOADS[@]}"; do
		for t in "${TARGETS[@]}"; do
			row="| $w | ${LABEL[$t]} | $(ok_runs "$w" "$t")/$RUNS |"
			for r in T L C; do
				row+=" $(tvals "$r" "$w" "$t" | awk '{ printf "%s%s", sep, (NF ? $1 : "—"); sep = ", " }') |"
			done
			echo "$row"
		done
	done
}

failover_table() {
	local f t p
	echo "| fault | client | runs ok | client gap (s): median | min–max | ratio to the proxy's | first commit after the fault (s) | new primary on the API (s) | acked lost (max) | commits on the old primary after the new leader (max) |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for f in "${FAULTS[@]}"; do
		p=$(rmed client_rto_s "$f" proxy)
		for t in "${CLIENT_TARGETS[@]}"; do
			printf '| %s | %s | %s/%s | %s | %s | %s | %s | %s | %s | %s |\n' "$f" "${LABEL[$t]}" \
				"$(rvals client_rto_s "$f" "$t" | awk 'NF { n++ } END { print n + 0 }')" "$FAILOVERS" \
				"$(v "$(f2 "$(rmed client_rto_s "$f" "$t")")")" "$(v "$(rvals client_rto_s "$f" "$t" | awk 'NF { printf "%.2f\n", $1 }' | range)")" \
				"$(ratio "$(rmed client_rto_s "$f" "$t")" "$p")" \
				"$(v "$(f2 "$(rmed first_ack_s "$f" "$t")")")" "$(v "$(f2 "$(rmed leader_s "$f" "$t")")")" \
				"$(v "$(rvals lost "$f" "$t" | awk 'NF' | sort -g | tail -n 1)")" \
				"$(v "$(rvals after_fault_on_old "$f" "$t" | awk 'NF' | sort -g | tail -n 1)")"
		done
	done
}

goals() {
	local w d p h f x
	for w in "${WORKLOADS[@]}"; do
		[[ $w == select-connect ]] && continue
		d=$(tmed "$w" direct) p=$(tmed "$w" proxy) h=$(tmed "$w" haproxy)
		x=$(ratio "$p" "$d")
		echo "- ${WDESC[$w]}: proxy / direct = $x, goal ≥ 0.95: **$(at_least "$x" 0.95)** (HAProxy / direct = $(ratio "$h" "$d"))"
		x=$(ratio "$p" "$h")
		echo "- ${WDESC[$w]}: proxy / HAProxy = $x, goal ≥ 1.0: **$(at_least "$x" 1)**"
	done
	for f in "${FAULTS[@]}"; do
		x=$(ratio "$(rmed client_rto_s "$f" haproxy)" "$(rmed client_rto_s "$f" proxy)")
		echo "- $f: client gap HAProxy / proxy = $x, goal > 1 (the proxy's clients reach the new primary sooner): **$(awk -v a="$x" 'BEGIN { if (a !~ /^[0-9.]+$/) print "FAIL (not measured)"; else if (a > 1) print "PASS"; else print "FAIL" }')**"
	done
}

failures() {
	local k w t r
	for k in "${!TF[@]}"; do
		IFS='|' read -r w t r <<<"$k"
		echo "- pgbench $w via $t, run $r: ${TF[$k]}"
	done | sort
	for k in "${!F[@]}"; do echo "- failover ${k/|/, run }: ${F[$k]}"; done | sort
}

report() {
	local dirty=""
	# The code in the binary: uncommitted changes (new files included) to what is built.
	[[ -z $(git -C "$ROOT" status --porcelain -- cmd internal pkg go.mod go.sum 2>/dev/null) ]] || dirty=" with uncommitted changes"
	echo "# bulwark proxy benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
	echo "- PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'), $("$PG_BIN/pgbench" --version), $(haproxy -v | awk 'NR == 1 { print $1, $3 }')"
	echo "- bulwark: commit $REV$dirty; cluster: \`bulwark up --nodes 3 --replication $REPLICATION --crash-restarts 0\` (shared_buffers 32MB, fsync on, synchronous_commit on, three nodes on 127.0.0.1)"
	echo "- Proxy: \`bulwark proxy --plan DIR/bulwark.yaml --listen-rw 127.0.0.1:P --listen-ro 127.0.0.1:P --http 127.0.0.1:P\`"
	echo "- HAProxy: Patroni's sample haproxy.cfg (\`mode tcp\`, \`retries 2\`, \`timeout connect 4s\`, \`timeout check 5s\`, \`maxconn 100\`), \`option httpchk GET /primary\`, \`http-check expect status 200\`, \`default-server $HAPROXY_PATRONI\`, servers = the nodes' PostgreSQL ports with \`check port\` = their agent's API port; the whole file is haproxy.cfg in the output directory"
	echo "- pgbench: scale $SCALE, \`-c $CLIENTS -j $THREADS\`, \`-T $DURATION\` (-S and TPC-B), \`-T $CONNECT_DURATION\` (-S -C); sslmode=disable; $RUNS repetitions, the order of the three paths rotated from one repetition to the next; a CHECKPOINT before every run"
	echo "- Failovers: $FAILOVERS per fault; in each, $(join , "${CLIENT_TARGETS[@]}" | sed 's/,/, /g') writers at once (bench/hawriter: one INSERT per transaction, reconnecting every 20 ms, one host:port)"
	echo
	echo "## Throughput"
	echo
	echo "TPS medians (min–max over the runs); ratios of medians."
	echo
	throughput_table
	echo
	echo "## Reconnection after a failover"
	echo
	echo "Client gap: the writer's outage, from its last commit acknowledged on the connection open at the fault to its first commit on a new connection (hawriter check's client_rto_s). kill = kill -9 of the primary's postmaster (the agent, with crash_restarts 0, hands leadership over at once); switchover = \`bulwark cluster switchover\`. All clients of a row saw the same faults. New primary on the API: from the fault to the first poll (every 50 ms) where another node alone answers 200 on /primary, a lower bound for every client."
	echo
	failover_table
	echo
	echo "## Goals"
	echo
	goals
	echo
	echo "## Every run"
	echo
	detail_table
	echo
	echo "Middleman CPU: user + system CPU of the proxy's or HAProxy's process over the run, in cores (the machine has $(nproc))."
	echo
	echo "## Notes"
	echo
	echo "- pgbench, PostgreSQL's three servers (two replicas streaming the TPC-B writes), the agents, etcd and the proxy under test share $(nproc) cores: a middleman's CPU is taken from the server's, so the proxy / direct ratio includes that cost, as it would on a shared host."
	echo "- Patroni's sample checks \`option httpchk\` (OPTIONS /), which Patroni answers like /primary; Bulwark's API serves GET (and HEAD), so the check is \`GET /primary\`, as Patroni's REST API documentation shows it. With \`inter 3s fall 3 rise 2\`, HAProxy needs two successful checks (3 to 6 s) to send anything to a new primary, and up to 9 s to stop sending to the old one."
	echo "- -S -C opens a connection per transaction: for a middleman that is an extra accept and connect per transaction. It is informational, not a goal."
	echo "- The proxy copies sessions without TLS in relay loops (epoll, one read per readiness; its default on $(nproc) cores: $(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 )) loop), as docs/proxy.md describes."
	echo "- Acked lost (async replication, kill): commits that backends of the killed postmaster acknowledged in the tens of milliseconds before they noticed its death, which no replica received (hawriter counts them as acknowledged after the fault). They depend on how long each client's connection to the dead server lives on, not on the route to the new primary; the proxy also closes read-write sessions when the topology loses its primary (docs/proxy.md)."
	echo "- The read-only ports (the proxy's --listen-ro, HAProxy's replicas listen on /replica) are configured but not measured."
	for n in "${NOTES[@]}"; do echo "- $n"; done
	if ((${#TF[@]} + ${#F[@]})); then
		echo
		echo "## Failed runs"
		echo
		failures
	fi
	echo
	echo "pgbench outputs, haproxy.cfg, the plan, every failover's \`hawriter check\` JSON, watcher and writer logs are in bench/out/proxy/$(basename "$OUT")/."
}

# ---------------------------------------------------------------- main

main() {
	((EUID == 0)) || die "run as root (PostgreSQL and the agents run as the postgres user)"
	local w f
	for w in "${WORKLOADS[@]}"; do pgbench_args "$w" >/dev/null; done
	for f in "${FAULTS[@]}"; do [[ $f == kill || $f == switchover ]] || die "unknown fault $f (BENCH_PROXY_FAULTS)"; done
	((RUNS >= 1 && FAILOVERS >= 0)) || die "BENCH_PROXY_RUNS must be at least 1"
	[[ $HAPROXY_FAST != 1 ]] || CLIENT_TARGETS+=(haproxy-fast)

	WORK=$(mktemp -d "$TMPBASE/bulwark-proxybench.XXXXXX")
	chmod 755 "$WORK"
	mkdir -p "$WORK/logs"
	log "work directory: $WORK"
	install_deps

	log "building bench/hawriter"
	(cd "$ROOT" && go build -o "$WORK/hawriter" ./bench/hawriter) || die "go build ./bench/hawriter failed"
	HAWRITER=$WORK/hawriter
	local bin=${BULWARK_BIN:-$ROOT/bin/bulwark}
	if [[ ! -x $bin ]]; then
		log "building bin/bulwark"
		(cd "$ROOT" && go build -o bin/bulwark ./cmd/bulwark)
	fi
	# A copy: a rebuild during the run does not change what is measured.
	install -m 0755 "$bin" "$WORK/bulwark"
	BULWARK=$WORK/bulwark
	"$BULWARK" proxy --help >/dev/null 2>&1 || die "$bin has no \`proxy\` command (rebuild it: make build)"
	REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

	local busy
	busy=$(busy_cores 3)
	log "machine busy before the start: $busy cores on average over 3 s"
	if awk -v b="$busy" 'BEGIN { exit !(b > 0.3) }'; then
		log "WARNING: the machine is busy ($busy cores): timings will be disturbed"
		NOTES+=("The machine was already busy before the start ($busy cores on average over 3 s): timings are disturbed.")
	fi

	OUT=$ROOT/bench/out/proxy/$(date +%Y%m%d-%H%M%S)
	mkdir -p "$OUT"
	local t0 t1
	t0=$(now)
	cluster_up
	start_proxy
	start_haproxy
	wait_for "$HEAL_MAX" all_healthy || die "not healthy in ${HEAL_MAX} s: no $UNHEALTHY"
	log "healthy in $(elapsed "$t0" "$(now)") s, primary $PRIMARY; proxy rw :$PX_RW, HAProxy :$HA_RW"

	t1=$(now)
	log "throughput: ${WORKLOADS[*]} × ${TARGETS[*]} × $RUNS"
	throughput
	log "throughput took $(elapsed "$t1" "$(now)") s"
	t1=$(now)
	if ((FAILOVERS > 0)); then
		log "failovers: ${FAULTS[*]} × $FAILOVERS, clients ${CLIENT_TARGETS[*]}"
		failovers
		log "failovers took $(elapsed "$t1" "$(now)") s"
	fi
	NOTES+=("Run time: $(elapsed "$t0" "$(now)") s from \`bulwark up\` to the last failover.")

	report >"$OUT/RESULTS-proxy.md"
	echo
	cat "$OUT/RESULTS-proxy.md"
	echo
	cp "$OUT/RESULTS-proxy.md" "$ROOT/bench/RESULTS-proxy.md"
	cp "$WORK/logs/proxy.log" "$WORK/logs/haproxy.log" "$OUT/" 2>/dev/null || true
	log "written to $OUT and bench/RESULTS-proxy.md"
}

# One line, read before main runs: an edit of this file during a run cannot
# make bash read the changed bytes after main returns.
main "$@"; exit $?
