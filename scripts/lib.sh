# lib.sh: shell functions shared by scripts/demo.sh and bench/run.sh.
# Source it after defining die().

# free_port prints a loopback TCP port nobody listens on.
free_port() {
	local port
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found"
}
