# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts (run.sh, wal.sh, s3.sh, ha.sh, proxy.sh) share, on top
# of scripts/lib.sh (source that one after this one: it needs die).

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# as_pg comes from scripts/lib.sh: the benchmarks run as root.

now() { date +%s.%N; }

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# busy_cores SECONDS: the machine's average busy cores over that long.
busy_cores() {
	local b0 b1
	b0=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat)
	sleep "$1"
	b1=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat)
	awk -v b="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" -v s="$1" 'BEGIN { printf "%.2f", b / hz / s }'
}

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && ${st%% *} != Z ]]
}

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (10).
stop_pid() {
	local pid=$1 t=${2:-10} i
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < t * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# our_pids: every process whose command line names the work directory
# (agents, postmasters and their children, etcd, the proxy, HAProxy), not
# this shell.
our_pids() {
	local f p
	[[ -n $WORK ]] || return 0
	# shellcheck disable=SC2013 # /proc/PID/cmdline: no spaces
	for f in $(grep -laF -f /dev/stdin /proc/[0-9]*/cmdline 2>/dev/null <<<"$WORK"); do
		p=${f#/proc/}
		p=${p%/cmdline}
		[[ $p == "$$" || $p == "$BASHPID" ]] && continue
		echo "$p"
	done
}

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# alloc_port VAR: set VAR to a loopback TCP port that nothing listens on,
# not handed out before in this run, and below the ephemeral range: a port
# from free_port (scripts/lib.sh) can be taken, between the pick and the
# server's bind, as the local port of an outgoing connection, and the
# writer opens thousands during a failover.
declare -A PORTS_GIVEN=()
alloc_port() {
	# Odd names: a local named like the caller's VAR would hide it from printf -v.
	local ap_low ap_port
	read -r ap_low _ </proc/sys/net/ipv4/ip_local_port_range
	((ap_low > 12000)) || die "the ephemeral port range starts at $ap_low: no room below it"
	for _ in $(seq 200); do
		ap_port=$((10000 + RANDOM % (ap_low - 10000)))
		[[ -z ${PORTS_GIVEN[$ap_port]:-} ]] || continue
		(exec 3<>"/dev/tcp/127.0.0.1/$ap_port") 2>/dev/null && continue
		PORTS_GIVEN[$ap_port]=1
		printf -v "$1" %s "$ap_port"
		return
	done
	die "no free port found"
}

join() {
	local IFS=$1
	shift
	echo "$*"
}

median() { # values as arguments (empty ones ignored); the lower median
	printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}
