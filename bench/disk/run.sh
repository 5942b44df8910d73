#!/usr/bin/env bash
# run.sh: the disk-tier benchmark, Weir against nginx proxy_cache, side by
# side on one machine. See README.md in this directory for what it
# measures; every knob is an environment variable:
#
#	bench/disk/run.sh                       # the full run, about 10 minutes on 2 cores
#	QUICK=1 bench/disk/run.sh               # a smoke run, under 2 minutes
#	WEIR_DISK=0 SIZES=16k bench/disk/run.sh # Weir with its memory tier only
#
# It builds weir, diskorigin and diskload into $RUN, starts the origin,
# nginx and weir on loopback, and writes $RUN/results/summary.md (also
# printed). Every process it starts is stopped when it exits, however it
# exits.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/disk

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	: "${MEM:=8MiB}" "${WS_MULT:=4}" "${SIZES:=16k 256k}" "${DURATION:=3s}" "${REPS:=1}"
	: "${MAX_RUNTIME:=300}"
fi
RUN=${RUN:-/var/tmp/weir-diskbench}
MEM=${MEM:-64MiB}             # Weir's memory tier, cache.max_size
WS_MULT=${WS_MULT:-8}         # distinct bytes per size, as a multiple of MEM
SIZES=${SIZES:-16k 1m}        # object sizes, one pass of every phase each
CONNS=${CONNS:-64}            # connections of the hit loader
WARM_CONNS=${WARM_CONNS:-16}  # connections of the warm passes
DURATION=${DURATION:-10s}     # every measured run
REPS=${REPS:-3}               # interleaved runs per server and phase
ZIPF_S=${ZIPF_S:-1.1}         # the popularity skew of the hit loader
SEED=${SEED:-1}
VERIFY=${VERIFY:-1}           # check every body (costs the loader CPU, the same for both)
WEIR_DISK=${WEIR_DISK:-1}     # 0: no cache.disk section (Weir's memory tier only)
WEIR_OVERLOAD=${WEIR_OVERLOAD:-} # Weir's overload.concurrency.mode (adaptive, fixed, off); empty: its default
DISK_MAX=${DISK_MAX:-8GiB}    # the disk bound of both caches
HIT_LOAD=${HIT_LOAD:-0.5}     # fill-storm phase: hits paced at this fraction of the slower server's hit rate
STORM_BW=${STORM_BW:-16}      # fill-storm phase: MiB/s of new objects, unless STORM_RATE is set
STORM_RATE=${STORM_RATE:-}    # fill-storm phase: new keys a second
STORM_CONNS=${STORM_CONNS:-16}
MAX_RUNTIME=${MAX_RUNTIME:-1800} # seconds; the run is stopped past it
ORIGIN_PORT=${ORIGIN_PORT:-9300}
NGINX_PORT=${NGINX_PORT:-9301}
WEIR_PORT=${WEIR_PORT:-9302}
WEIR_ADMIN_PORT=${WEIR_ADMIN_PORT:-9303}
NGINX=${NGINX:-nginx}

die() {
	echo "run.sh: $*" >&2
	exit 1
}
log() { echo "run.sh: $(date +%T) $*" >&2; }

# to_bytes reads 16k, 1m, 64MiB, 8GiB or a plain number of bytes (binary
# units throughout).
to_bytes() {
	local v=$1 n u
	n=${v%%[!0-9]*}
	u=${v#"$n"}
	[ -n "$n" ] || die "size $v: want a number with an optional unit (k, m, g, KiB, MiB, GiB)"
	case $u in
	"" | B) echo "$n" ;;
	k | K | KiB) echo $((n << 10)) ;;
	m | M | MiB) echo $((n << 20)) ;;
	g | G | GiB) echo $((n << 30)) ;;
	*) die "size $v: unknown unit $u (k, m, g, KiB, MiB, GiB)" ;;
	esac
}

case $RUN in
/*) ;;
*) die "RUN=$RUN: want an absolute path" ;;
esac
case $RUN in
*'|'* | *' '*) die "RUN=$RUN: no spaces or | please" ;;
esac
[ "$RUN" != / ] || die "RUN=/: want a directory of its own"
command -v "$NGINX" >/dev/null || die "$NGINX not found (apt-get install nginx-light, or set NGINX)"
command -v go >/dev/null || die "go not found"
for v in CONNS WARM_CONNS REPS WS_MULT STORM_CONNS MAX_RUNTIME ORIGIN_PORT NGINX_PORT WEIR_PORT WEIR_ADMIN_PORT; do
	[[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "$v=${!v}: want a positive integer"
done
MEM_BYTES=$(to_bytes "$MEM")
DISK_MAX_BYTES=$(to_bytes "$DISK_MAX")
# Weir takes objects up to a quarter of its memory bound, 16 MiB at most.
MEM_OBJ=$((MEM_BYTES / 4 < 16 << 20 ? MEM_BYTES / 4 : 16 << 20))

port_busy() {
	if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		return 0
	fi
	command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$1")" ]
}
for p in "$ORIGIN_PORT" "$NGINX_PORT" "$WEIR_PORT" "$WEIR_ADMIN_PORT"; do
	if port_busy "$p"; then
		die "port $p is in use: stop what listens there or set ORIGIN_PORT, NGINX_PORT, WEIR_PORT, WEIR_ADMIN_PORT"
	fi
done

mkdir -p "$RUN"
FSTYPE=$(df --output=fstype "$RUN" 2>/dev/null | tail -n1 || stat -f -c %T "$RUN")
case $FSTYPE in
tmpfs | ramfs) die "RUN=$RUN is on $FSTYPE: the caches must be on a real disk (the default is /var/tmp/weir-diskbench)" ;;
esac

# Every process started is tracked here and stopped on exit.
PIDS=()
NAMES=()
LOADPID=
cleanup() {
	local rc=$? i pid n
	trap - EXIT INT TERM
	if [ -n "$LOADPID" ] && kill -0 "$LOADPID" 2>/dev/null; then
		kill -TERM "$LOADPID" 2>/dev/null || true
	fi
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		kill -TERM "$pid" 2>/dev/null || true
	done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		for ((n = 0; n < 50; n++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "run.sh: ${NAMES[i]} (pid $pid) did not stop on TERM: killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	[ $rc = 0 ] || echo "run.sh: failed (status $rc); logs in $RUN/logs" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# track NAME PID records a process to stop on exit.
track() {
	NAMES+=("$1")
	PIDS+=("$2")
}

# stop PID stops one process now and forgets it.
stop() {
	local pid=$1 i n
	kill -TERM "$pid" 2>/dev/null || true
	for ((n = 0; n < 50; n++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for i in "${!PIDS[@]}"; do
		if [ "${PIDS[i]}" = "$pid" ]; then
			unset 'PIDS[i]' 'NAMES[i]'
		fi
	done
	PIDS=("${PIDS[@]}")
	NAMES=("${NAMES[@]}")
}

# The watchdog ends the run past MAX_RUNTIME seconds.
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$MAX_RUNTIME" &
	sp=$!
	wait "$sp"
	echo "run.sh: MAX_RUNTIME=${MAX_RUNTIME}s passed: stopping" >&2
	kill -TERM $$
) &
track watchdog $!

# wait_port NAME PID PORT waits until PORT accepts connections, at most
# 20 s, and fails if the process exits first.
wait_port() {
	local n
	for ((n = 0; n < 200; n++)); do
		kill -0 "$2" 2>/dev/null || die "$1 exited at start: see $RUN/logs/$1.log"
		if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "$1 did not listen on port $3 within 20 s: see $RUN/logs/$1.log"
}

# load OUT ARGS... runs diskload with ARGS, its JSON line into OUT. It
# runs in the background so that a signal reaches the traps at once.
load() {
	local out=$1
	shift
	"$RUN/diskload" "$@" >"$out" 2>>"$RUN/logs/diskload.log" &
	LOADPID=$!
	wait "$LOADPID" || die "diskload $* failed: see $RUN/logs/diskload.log"
	LOADPID=
}

# jf FILE KEY prints the value of KEY in the one-line JSON object in FILE.
jf() {
	sed -n 's/.*"'"$2"'":\("[^"]*"\|[^,}]*\).*/\1/p' "$1" | head -n1
}

# calc EXPR evaluates a floating-point expression.
calc() { awk "BEGIN { printf \"%s\", $* }"; }

# median prints the median of its arguments (the lower middle one of an
# even number).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# write_bytes PID... sums what the processes (and their children) caused
# to be written to storage, from /proc/PID/io.
write_bytes() {
	local sum=0 p c
	for p in "$@"; do
		for c in $p $(pgrep -P "$p" || true); do
			if [ -r "/proc/$c/io" ]; then
				sum=$((sum + $(awk '/^write_bytes:/ { print $2 }' "/proc/$c/io")))
			fi
		done
	done
	echo "$sum"
}

log "building into $RUN (from $ROOT)"
rm -rf "$RUN/results" "$RUN/logs"
mkdir -p "$RUN/results" "$RUN/logs"
(cd "$ROOT" && go build -o "$RUN/weir" ./cmd/weir && go build -o "$RUN/" ./bench/disk/diskorigin ./bench/disk/diskload)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$COMMIT" != unknown ] && [ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	COMMIT=$COMMIT-dirty
fi
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')

"$RUN/diskorigin" -listen "127.0.0.1:$ORIGIN_PORT" >"$RUN/logs/diskorigin.log" 2>&1 &
ORIGIN_PID=$!
track diskorigin "$ORIGIN_PID"
wait_port diskorigin "$ORIGIN_PID" "$ORIGIN_PORT"
ORIGIN=http://127.0.0.1:$ORIGIN_PORT
NGINX_URL=http://127.0.0.1:$NGINX_PORT
WEIR_URL=http://127.0.0.1:$WEIR_PORT
WEIR_ADMIN=http://127.0.0.1:$WEIR_ADMIN_PORT

NGINX_PID=
WEIR_PID=

# start_servers starts nginx and weir with empty caches.
start_servers() {
	rm -rf "$RUN/nginx" "$RUN/ngx-cache" "$RUN/weir-disk"
	mkdir -p "$RUN/nginx/tmp" "$RUN/ngx-cache"
	local ngx_max=$((DISK_MAX_BYTES >> 20))m
	sed -e "s|@PREFIX@|$RUN/nginx|g" -e "s|@CACHE@|$RUN/ngx-cache|g" -e "s|@DISK_MAX@|$ngx_max|g" \
		-e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@NGINX_PORT@|$NGINX_PORT|g" \
		"$HERE/nginx.conf.in" >"$RUN/nginx/nginx.conf"
	"$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/error.log" -g 'daemon off;' \
		>>"$RUN/logs/nginx.log" 2>&1 &
	NGINX_PID=$!
	track nginx "$NGINX_PID"
	wait_port nginx "$NGINX_PID" "$NGINX_PORT"

	{
		echo "# Written by bench/disk/run.sh."
		echo "listen: 127.0.0.1:$WEIR_PORT"
		echo "admin_listen: 127.0.0.1:$WEIR_ADMIN_PORT"
		echo "cache:"
		echo "  max_size: $MEM_BYTES"
		echo "  max_object_size: $MEM_OBJ"
		if [ "$WEIR_DISK" != 0 ]; then
			echo "  disk:"
			echo "    path: $RUN/weir-disk"
			echo "    max_size: $DISK_MAX_BYTES"
			echo "    max_object_size: 1GiB"
		fi
		if [ -n "$WEIR_OVERLOAD" ]; then
			echo "overload:"
			echo "  concurrency:"
			echo "    mode: $WEIR_OVERLOAD"
		fi
	} >"$RUN/weir.yaml"
	"$RUN/weir" serve --config "$RUN/weir.yaml" --origin "$ORIGIN" --listen "127.0.0.1:$WEIR_PORT" \
		--admin-listen "127.0.0.1:$WEIR_ADMIN_PORT" --log-level warn >>"$RUN/logs/weir.log" 2>&1 &
	WEIR_PID=$!
	track weir "$WEIR_PID"
	wait_port weir "$WEIR_PID" "$WEIR_PORT"
	wait_port weir "$WEIR_PID" "$WEIR_ADMIN_PORT"
}

stop_servers() {
	[ -z "$NGINX_PID" ] || stop "$NGINX_PID"
	[ -z "$WEIR_PID" ] || stop "$WEIR_PID"
	NGINX_PID= WEIR_PID=
}

# settle waits (at most 15 s) until Weir's disk write counter stops
# moving, so that writes still queued after the last response count.
settle() {
	local prev cur n
	prev=$("$RUN/diskload" -scrape "$WEIR_ADMIN" | sed -n 's/.*"weir_disk_written_bytes_total":\([^,}]*\).*/\1/p')
	[ "$prev" != null ] || return 0
	for ((n = 0; n < 15; n++)); do
		sleep 1
		cur=$("$RUN/diskload" -scrape "$WEIR_ADMIN" | sed -n 's/.*"weir_disk_written_bytes_total":\([^,}]*\).*/\1/p')
		[ "$cur" != "$prev" ] || return 0
		prev=$cur
	done
}

# file_bytes DIR prints the sum of the sizes of the files under DIR, n/a
# when there is no DIR.
file_bytes() {
	if [ -d "$1" ]; then
		find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'
	else
		echo n/a
	fi
}

# mib BYTES prints BYTES in MiB with one decimal.
mib() { calc "$1 / 1048576" | awk '{ printf "%.1f", $1 }'; }

# ratio A B prints A/B with two decimals, or n/a when either is not a
# number or B is 0.
ratio() {
	if [[ $1 =~ ^[0-9.e+-]+$ && $2 =~ ^[0-9.e+-]+$ ]] && [ "$(calc "($2) != 0")" = 1 ]; then
		calc "$1 / ($2)" | awk '{ printf "%.2f", $1 }'
	else
		echo n/a
	fi
}

verify_flag=()
[ "$VERIFY" = 0 ] || verify_flag=(-verify)

HIT_ROWS=()
WARM_ROWS=()
STORM_ROWS=()
NOTES=()

for SIZE in $SIZES; do
	SIZE_BYTES=$(to_bytes "$SIZE")
	KEYS=$((WS_MULT * MEM_BYTES / SIZE_BYTES))
	[ "$KEYS" -ge 1 ] || die "SIZE=$SIZE is larger than WS_MULT*MEM"
	R=$RUN/results/$SIZE
	mkdir -p "$R"
	log "size $SIZE: $KEYS keys ($(mib $((KEYS * SIZE_BYTES))) MiB), fresh caches"
	start_servers
	# Flags given twice: the last one counts.
	common=(-keys "$KEYS" -size "$SIZE" -s "$ZIPF_S" -conns "$CONNS" -seed "$SEED" "${verify_flag[@]}")

	# Warm: every key twice, one server at a time, the origin's and the
	# disk's counters read around it.
	for srv in nginx weir; do
		if [ $srv = nginx ]; then url=$NGINX_URL pid=$NGINX_PID; else url=$WEIR_URL pid=$WEIR_PID; fi
		"$RUN/diskload" -count "$ORIGIN" >"$R/$srv-origin-0.json"
		[ $srv = nginx ] || "$RUN/diskload" -scrape "$WEIR_ADMIN" >"$R/weir-metrics-0.json"
		io0=$(write_bytes "$pid")
		log "size $SIZE: warming $srv (pass 1)"
		load "$R/$srv-warm1.json" -url "$url" -warm -max-time 5m -label "$srv warm 1" "${common[@]}" -conns "$WARM_CONNS"
		"$RUN/diskload" -count "$ORIGIN" >"$R/$srv-origin-1.json"
		log "size $SIZE: warming $srv (pass 2)"
		load "$R/$srv-warm2.json" -url "$url" -warm -max-time 5m -label "$srv warm 2" "${common[@]}" -conns "$WARM_CONNS" -seed $((SEED + 1))
		[ $srv = nginx ] || settle
		"$RUN/diskload" -count "$ORIGIN" >"$R/$srv-origin-2.json"
		[ $srv = nginx ] || "$RUN/diskload" -scrape "$WEIR_ADMIN" >"$R/weir-metrics-1.json"
		io1=$(write_bytes "$pid")
		echo "$((io1 - io0))" >"$R/$srv-write-bytes"
		if [ $srv = nginx ]; then dir=$RUN/ngx-cache; else dir=$RUN/weir-disk; fi
		file_bytes "$dir" >"$R/$srv-disk-bytes"
		for f in "$R/$srv-warm1.json" "$R/$srv-warm2.json"; do
			[ "$(jf "$f" complete)" = true ] || NOTES+=("$SIZE $srv: $(jf "$f" label) did not finish within -max-time")
		done
	done

	# Hits: REPS runs a server, alternating which goes first.
	for ((rep = 1; rep <= REPS; rep++)); do
		if ((rep % 2)); then order="nginx weir"; else order="weir nginx"; fi
		for srv in $order; do
			if [ $srv = nginx ]; then url=$NGINX_URL; else url=$WEIR_URL; fi
			log "size $SIZE: hits, $srv, run $rep of $REPS"
			load "$R/$srv-hit-$rep.json" -url "$url" -duration "$DURATION" -label "$srv hit $rep" "${common[@]}" -seed $((SEED + rep))
		done
	done

	# Fill storm: hits paced at HIT_LOAD of the slower server's median
	# rate, alone and with new keys arriving at the storm rate.
	declare -A med_rps med_p99 med_hit errs shed bad
	for srv in nginx weir; do
		rps=() p99=() hr=()
		errs[$srv]=0 shed[$srv]=0 bad[$srv]=0
		for ((rep = 1; rep <= REPS; rep++)); do
			f=$R/$srv-hit-$rep.json
			rps+=("$(jf "$f" req_per_s)") p99+=("$(jf "$f" p99_ms)") hr+=("$(jf "$f" hit_ratio)")
			errs[$srv]=$((errs[$srv] + $(jf "$f" errors)))
			shed[$srv]=$((shed[$srv] + $(jf "$f" shed)))
			bad[$srv]=$((bad[$srv] + $(jf "$f" corrupt)))
		done
		med_rps[$srv]=$(median "${rps[@]}")
		med_p99[$srv]=$(median "${p99[@]}")
		med_hit[$srv]=$(median "${hr[@]}")
	done
	pace=$(calc "${HIT_LOAD} * (${med_rps[nginx]} < ${med_rps[weir]} ? ${med_rps[nginx]} : ${med_rps[weir]})" | awk '{ printf "%d", $1 }')
	[ "$pace" -ge 1 ] || pace=1
	if [ -n "$STORM_RATE" ]; then
		rate=$STORM_RATE
	else
		rate=$(calc "$STORM_BW * 1048576 / $SIZE_BYTES" | awk '{ r = int($1); if (r < 1) r = 1; if (r > 2000) r = 2000; print r }')
	fi
	for ((rep = 1; rep <= REPS; rep++)); do
		if ((rep % 2)); then order="nginx weir"; else order="weir nginx"; fi
		for srv in $order; do
			if [ $srv = nginx ]; then url=$NGINX_URL; else url=$WEIR_URL; fi
			log "size $SIZE: fill storm, $srv, run $rep of $REPS (hits at $pace/s, $rate new keys/s)"
			load "$R/$srv-idle-$rep.json" -url "$url" -fill-storm -rate 0 -pace "$pace" -duration "$DURATION" \
				-label "$srv idle $rep" "${common[@]}" -seed $((SEED + 100 + rep))
			load "$R/$srv-storm-$rep.json" -url "$url" -fill-storm -rate "$rate" -pace "$pace" -duration "$DURATION" \
				-storm-conns "$STORM_CONNS" -storm-first $((1000000000 + rep * 10000000)) \
				-label "$srv storm $rep" "${common[@]}" -seed $((SEED + 100 + rep))
		done
	done

	# The rows of this size.
	HIT_ROWS+=("| $SIZE | $KEYS | $(calc "${med_rps[nginx]}" | awk '{ printf "%.0f", $1 }') | ${med_p99[nginx]} | $(calc "${med_hit[nginx]}" | awk '{ printf "%.3f", $1 }') | $(calc "${med_rps[weir]}" | awk '{ printf "%.0f", $1 }') | ${med_p99[weir]} | $(calc "${med_hit[weir]}" | awk '{ printf "%.3f", $1 }') | $(ratio "${med_rps[weir]}" "${med_rps[nginx]}") | ${errs[nginx]} (${shed[nginx]}) / ${errs[weir]} (${shed[weir]}) | ${bad[nginx]} / ${bad[weir]} |")

	for srv in nginx weir; do
		o0=$R/$srv-origin-0.json o1=$R/$srv-origin-1.json o2=$R/$srv-origin-2.json
		req1=$(($(jf "$o1" requests) - $(jf "$o0" requests)))
		req2=$(($(jf "$o2" requests) - $(jf "$o1" requests)))
		fetched=$(($(jf "$o2" bytes) - $(jf "$o0" bytes)))
		wb=$(cat "$R/$srv-write-bytes")
		ondisk=$(cat "$R/$srv-disk-bytes")
		if [ $srv = nginx ]; then
			admitted=$fetched metric_wa=n/a
		else
			a0=$(jf "$R/weir-metrics-0.json" weir_disk_admitted_bytes_total)
			a1=$(jf "$R/weir-metrics-1.json" weir_disk_admitted_bytes_total)
			w0=$(jf "$R/weir-metrics-0.json" weir_disk_written_bytes_total)
			w1=$(jf "$R/weir-metrics-1.json" weir_disk_written_bytes_total)
			if [ "$a0" != null ] && [ "$a1" != null ] && [ "$w0" != null ] && [ "$w1" != null ]; then
				admitted=$(calc "$a1 - $a0" | awk '{ printf "%.0f", $1 }')
				metric_wa=$(ratio "$(calc "$w1 - $w0")" "$admitted")
			else
				admitted=n/a metric_wa=n/a
			fi
		fi
		adm_mib=n/a
		[ "$admitted" = n/a ] || adm_mib=$(mib "$admitted")
		disk_mib=n/a
		[ "$ondisk" = n/a ] || disk_mib=$(mib "$ondisk")
		werr=$(($(jf "$R/$srv-warm1.json" errors) + $(jf "$R/$srv-warm2.json" errors)))
		wshed=$(($(jf "$R/$srv-warm1.json" shed) + $(jf "$R/$srv-warm2.json" shed)))
		wbad=$(($(jf "$R/$srv-warm1.json" corrupt) + $(jf "$R/$srv-warm2.json" corrupt)))
		WARM_ROWS+=("| $SIZE | $srv | $(jf "$R/$srv-warm1.json" seconds | awk '{ printf "%.1f", $1 }') | $(jf "$R/$srv-warm2.json" hit_ratio | awk '{ printf "%.3f", $1 }') | $req1 / $req2 | $(mib "$fetched") | $adm_mib | $disk_mib | $(ratio "$ondisk" "$admitted") | $(ratio "$wb" "$admitted") | $metric_wa | $werr ($wshed) / $wbad |")
	done

	for srv in nginx weir; do
		ip=() sp=() mbs=() drop=0 serr=0 sbad=0 ferr=0 fshed=0 sshed=0
		for ((rep = 1; rep <= REPS; rep++)); do
			fi_=$R/$srv-idle-$rep.json fs=$R/$srv-storm-$rep.json
			ip+=("$(jf "$fi_" p99_ms)") sp+=("$(jf "$fs" p99_ms)") mbs+=("$(jf "$fs" storm_mib_per_s)")
			drop=$((drop + $(jf "$fs" storm_dropped)))
			serr=$((serr + $(jf "$fs" storm_errors)))
			sshed=$((sshed + $(jf "$fs" storm_shed)))
			sbad=$((sbad + $(jf "$fs" storm_corrupt) + $(jf "$fs" corrupt) + $(jf "$fi_" corrupt)))
			ferr=$((ferr + $(jf "$fs" errors) + $(jf "$fi_" errors)))
			fshed=$((fshed + $(jf "$fs" shed) + $(jf "$fi_" shed)))
		done
		idle=$(median "${ip[@]}") busy=$(median "${sp[@]}")
		worst_idle=$(printf '%s\n' "${ip[@]}" | sort -g | tail -n1)
		worst_busy=$(printf '%s\n' "${sp[@]}" | sort -g | tail -n1)
		STORM_ROWS+=("| $SIZE | $srv | $pace | $rate ($(median "${mbs[@]}" | awk '{ printf "%.1f", $1 }') MiB/s) | $idle ($worst_idle) | $busy ($worst_busy) | $(ratio "$busy" "$idle") | $drop | $ferr ($fshed) / $serr ($sshed) | $sbad |")
	done
	stop_servers
done

{
	echo "# Disk-tier benchmark: Weir against nginx proxy_cache"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT, $NGINX_VERSION, $(go env GOVERSION), $(nproc) CPUs, $RUN on $FSTYPE."
	echo "Weir: cache.max_size $MEM, max_object_size $MEM_OBJ bytes, disk tier $([ "$WEIR_DISK" != 0 ] && echo "on ($DISK_MAX)" || echo "off (WEIR_DISK=0)"), overload.concurrency.mode ${WEIR_OVERLOAD:-default}."
	echo "nginx: proxy_cache_path max_size $DISK_MAX, use_temp_path=off, sendfile on."
	echo "Working set $WS_MULT x MEM per size; $CONNS connections; $DURATION runs; $REPS interleaved runs a cell (medians); Zipf s=$ZIPF_S; bodies verified: $([ "$VERIFY" != 0 ] && echo yes || echo no)."
	echo
	echo "## Hits (closed loop, after two warm passes)"
	echo
	echo "| size | keys | nginx req/s | nginx p99 ms | nginx hit ratio | Weir req/s | Weir p99 ms | Weir hit ratio | Weir / nginx | errors (503s) n / W | corrupt n / W |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${HIT_ROWS[@]}"
	echo
	echo "## Warm (every key twice) and write amplification"
	echo
	echo "origin reqs: what the two passes cost the origin. admitted: origin bytes for nginx, weir_disk_admitted_bytes_total for Weir."
	echo "on disk: the sizes of the files in the cache directory after the warm. write_bytes: /proc/PID/io over the warm."
	echo "metric: delta weir_disk_written_bytes_total / delta weir_disk_admitted_bytes_total (after the writes settle)."
	echo
	echo "| size | server | pass 1 s | pass 2 hit ratio | origin reqs 1 / 2 | fetched MiB | admitted MiB | on disk MiB | on disk / admitted | write_bytes / admitted | metric write amp. | errors (503s) / corrupt |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${WARM_ROWS[@]}"
	echo
	echo "## Hits during a fill storm"
	echo
	echo "Hits paced at $HIT_LOAD of the slower server's median hit rate (from their scheduled times), alone (idle) and while new keys arrive at the storm rate."
	echo
	echo "| size | server | hits/s | storm keys/s | idle p99 ms (worst) | storm p99 ms (worst) | storm / idle | storm dropped | errors (503s) hit / storm | corrupt |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${STORM_ROWS[@]}"
	if [ ${#NOTES[@]} -gt 0 ]; then
		echo
		printf -- '- %s\n' "${NOTES[@]}"
	fi
} >"$RUN/results/summary.md"
cat "$RUN/results/summary.md"
