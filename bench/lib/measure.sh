# shellcheck shell=bash
# One scenario = every contender started side by side (own port, same upstream), a warm-up each, then
# ROUNDS rounds in which the contenders take turns (A B A B ...), each run a wrk of DUR seconds whose
# every response is identity-checked by load.lua. One TSV row per run in $RESULTS_TSV.
# Needs WRK_T, WRK_C, ROUNDS, DUR, WARM and the contender/upstream functions.

TSV_HEADER='scenario	contender	round	sites	tls	workers	rps	p50_ms	p99_ms	requests	non2xx	sock_errors	ok	wrong	failed	new_upstream_conn	resumed	proxy_cpu_us_per_req	upstream_cpu_us_per_req'

to_ms() {  # wrk latency text (e.g. 512.00us, 1.20ms, 1.01s) → milliseconds
  awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
         else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000 } else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 } else print "" }' <<< "$1"
}

# wrk_run NAME SECONDS NT PORT: one wrk run against 127.0.0.1:PORT; prints its output.
wrk_run() {
  SITES_FILE=$CACHE/sites-$N.list NT=$3 EXPECT_SITE=$EXPECT_OF_PORT \
    timeout $(( $2 + 60 )) wrk -t"$WRK_T" -c"$WRK_C" -d"$2s" --timeout 10s --latency -s "$BENCH_DIR/lib/load.lua" \
    "http://127.0.0.1:$4/" 2>&1
}

# measured_run SCENARIO CONTENDER ROUND NT: one wrk run + /proc CPU of the proxy and the upstream.
measured_run() {
  local scenario=$1 name=$2 round=$3 nt=$4 port pid out p0 p1 u0 u1 reqs
  port=${CONTENDER_PORT[$name]}; pid=${CONTENDER_PID[$name]}
  kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during $scenario; see $RUN"
  EXPECT_OF_PORT=${CONTENDER_EXPECT[$name]}
  p0=$(cpu_ticks "$pid"); u0=$(cpu_ticks "$UP_PID")
  out=$(wrk_run "$name" "$DUR" "$nt" "$port")
  p1=$(cpu_ticks "$pid"); u1=$(cpu_ticks "$UP_PID")
  echo "$out" > "$RUN/wrk.$scenario.$name.$round.txt"
  reqs=$(awk '/requests in/ {print $1}' <<< "$out")
  local rps p50 p99 n2 se check
  rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<< "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
  n2=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
  se=$(awk '/Socket errors/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' <<< "$out")
  check=$(grep '^CHECK' <<< "$out" | sed 's/^CHECK //')
  [ -n "$rps" ] && [ -n "$check" ] || die "wrk gave no figures for $name ($RUN/wrk.$scenario.$name.$round.txt)"
  local kv ok wrong failed nc rs
  for kv in $check; do
    case "$kv" in ok=*) ok=${kv#*=} ;; wrong=*) wrong=${kv#*=} ;; failed=*) failed=${kv#*=} ;;
      new_upstream_conn=*) nc=${kv#*=} ;; resumed=*) rs=${kv#*=} ;; esac
  done
  local pcpu ucpu
  pcpu=$(awk -v a="$p0" -v b="$p1" -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "" }')
  ucpu=$(awk -v a="$u0" -v b="$u1" -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$scenario" "$name" "$round" "$nt" "$TLSV" "$W" "$rps" "$p50" "$p99" "$reqs" "${n2:-0}" "${se:-0}" \
    "$ok" "$wrong" "$failed" "$nc" "$rs" "$pcpu" "$ucpu" >> "$RESULTS_TSV"
  log "  $scenario round $round $(printf '%-22s' "$name") $(printf '%9s' "$rps") req/s  p99 ${p99} ms  ok $ok wrong $wrong failed $failed  cpu ${pcpu} µs/req"
}

# scenario NAME SITES NT TLSV W KA UPSTREAM(sessions|fullhs) CONTENDER...
scenario() {
  local name=$1; N=$2; local nt=$3; TLSV=$4; W=$5; KA=$6; local up=$7; shift 7
  local contenders=("$@") c r
  if [ "$up" = fullhs ]; then UPSTREAM_PORT=$UP_FULLHS_PORT; else UPSTREAM_PORT=$UP_PORT; fi
  log "scenario $name: $N sites configured, $nt rotated, TLS $TLSV, $W worker(s), wrk -t$WRK_T -c$WRK_C," \
    "$ROUNDS x ${DUR}s (${WARM}s warm-up): ${contenders[*]}"
  declare -gA CONTENDER_PID CONTENDER_PORT CONTENDER_EXPECT
  for c in "${contenders[@]}"; do
    contender_start "$c"
    CONTENDER_PID[$c]=$PROXY_PID; CONTENDER_PORT[$c]=$PROXY_PORT; CONTENDER_EXPECT[$c]=$EXPECT_SITE
  done
  for c in "${contenders[@]}"; do
    EXPECT_OF_PORT=${CONTENDER_EXPECT[$c]}
    wrk_run "$c" "$WARM" "$nt" "${CONTENDER_PORT[$c]}" > "$RUN/wrk.$name.$c.warmup.txt"
  done
  for r in $(seq 1 "$ROUNDS"); do
    for c in "${contenders[@]}"; do measured_run "$name" "$c" "$r" "$nt"; done
  done
  for c in "${contenders[@]}"; do PROXY_PID=${CONTENDER_PID[$c]}; contender_stop; done
  unset CONTENDER_PID CONTENDER_PORT CONTENDER_EXPECT
}
