#!/usr/bin/env bash
# orgproxy demo: three practice sites, each reaching mock DMP and INSi endpoints (the real nginx, requiring
# mutual TLS) through orgproxy with its OWN certificate, whose private key stays in a SoftHSM token.
#
#   bash scripts/demo.sh          # run the requests, print the table, keep orgproxy running until Ctrl-C
#   bash scripts/demo.sh --once   # run the requests, print the table, stop (exit 1 if any row is WRONG)
#
# Everything lives in a temporary directory (kept when ORGPROXY_KEEP_TMP=1); no system service is started;
# nginx and the daemon are stopped on exit, Ctrl-C included.
set -euo pipefail

once=0
case "${1:-}" in
  --once) once=1 ;;
  "") ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "usage: bash scripts/demo.sh [--once]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build_log=build/demo-build.log
mkdir -p build
echo "demo: building orgproxy and orgproxy-testkit (preset ci; log in $build_log)"
if ! { cmake --preset ci && cmake --build --preset ci --target orgproxy orgproxy-testkit -- -j2; } \
    >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  echo "demo: the build failed; full log in $build_log" >&2
  exit 1
fi
bin=build/ci/daemon/orgproxy
testkit=build/ci/tests/support/orgproxy-testkit

work=$(mktemp -d "${TMPDIR:-/tmp}/orgproxy-demo-XXXXXX")
nginx_pid=""
daemon_pid=""
stop_pid() {  # SIGTERM, then SIGKILL after 5 s: only the processes this script started
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$daemon_pid"
  stop_pid "$nginx_pid"
  if [ "${ORGPROXY_KEEP_TMP:-}" = 1 ]; then echo "demo files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo; echo "stopping"; exit 130' INT TERM

wait_port() {  # wait_port PORT PID NAME LOG: until 127.0.0.1:PORT accepts, or fail with the log
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "demo: $3 did not start; its log:" >&2
  cat "$4" >&2
  exit 1
}

"$testkit" demo-setup "$work"
# shellcheck disable=SC1091
. "$work/demo.env"
export SOFTHSM2_CONF

nginx -p "$NGINX_DIR/" -c "$NGINX_CONF" -e "$NGINX_DIR/error.log" -g 'daemon off;' \
  >"$NGINX_DIR/nginx.out" 2>&1 &
nginx_pid=$!
wait_port "$DMP_PORT" "$nginx_pid" nginx "$NGINX_DIR/error.log"
wait_port "$INSI_PORT" "$nginx_pid" nginx "$NGINX_DIR/error.log"

"$bin" run --config "$ORGPROXY_CONFIG" >"$work/orgproxy.log" 2>&1 &
daemon_pid=$!
wait_port "$ORGPROXY_PORT" "$daemon_pid" orgproxy "$work/orgproxy.log"

dmp_action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
insi_action="urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"
wrong=0
row() { printf '%-16s %-5s %-27s %-6s %-6s %s\n' "$@"; }

send() {  # send SITE_ID SECTOR SERVICE PATH SAMPLE ACTION EXPECTED_DN
  local id=$1 sector=$2 service=$3 path=$4 sample=$5 action=$6 expected=$7
  local body="$work/$id-$service.xml" headers="$work/$id-$service.headers"
  sed "s/@@STRUCTURE_ID@@/$id/g" "tests/samples/$sample" >"$body"
  local status
  status=$(curl -sS -o /dev/null -D "$headers" -w '%{http_code}' --max-time 60 \
    -H "X-Orgproxy-Tenant: $id" \
    -H "Content-Type: application/soap+xml; charset=UTF-8; action=\"$action\"" \
    --data-binary "@$body" "http://127.0.0.1:$ORGPROXY_PORT$path" 2>"$work/curl.err") || status="fail"
  local seen
  seen=$(tr -d '\r' <"$headers" 2>/dev/null | sed -n 's/^[Xx]-[Cc]lient-[Dd][Nn]: //p' | tail -1) || seen=""
  local error
  error=$(tr -d '\r' <"$headers" 2>/dev/null | sed -n 's/^[Xx]-[Oo]rgproxy-[Ee]rror: //p' | tail -1) || error=""
  local verdict=WRONG
  if [ "$status" = 200 ] && [ "$seen" = "$expected" ]; then verdict=OK; else wrong=1; fi
  row "$id" "$sector" "$service $path" "$status" "$verdict" "${seen:-${error:+orgproxy error: $error}}"
}

echo
echo "orgproxy on 127.0.0.1:$ORGPROXY_PORT, DMP mock on 127.0.0.1:$DMP_PORT, INSi mock on 127.0.0.1:$INSI_PORT"
echo
row "SITE" "SECT." "SERVICE" "HTTP" "CHECK" "CERTIFICATE DN SEEN BY THE ENDPOINT"
while IFS=$'\t' read -r id sector name dmp_dn insi_dn; do
  send "$id" "$sector" DMP /dmp/repository dmp-iti41-provide-and-register.xml "$dmp_action" "$dmp_dn"
  send "$id" "$sector" INSi /insi insi-rechercher-ins-avec-traits-identite.xml "$insi_action" "$insi_dn"
done <"$SITES_FILE"
echo
if [ "$wrong" = 0 ]; then
  echo "Every endpoint saw the certificate of the site that sent the request."
else
  echo "Some requests did not reach the endpoint with their site's certificate; orgproxy log: $work/orgproxy.log"
fi

if [ "$once" = 1 ]; then
  [ "$wrong" = 0 ] || { tail -n 30 "$work/orgproxy.log" >&2; exit 1; }
  exit 0
fi
echo
echo "orgproxy keeps running (Ctrl-C to stop). Its configuration and demo token are in $work"
echo "(run ORGPROXY_KEEP_TMP=1 bash scripts/demo.sh to keep them; '. $work/demo.env' points orgproxy keys and"
echo "check-config at the demo token). Try:"
first=$(head -n 1 "$SITES_FILE" | cut -f 1)
# The samples carry the site in their VIHF (@@STRUCTURE_ID@@): filled in, as the rows above were, or orgproxy
# refuses the request (403 vihf_mismatch) because the VIHF would name another structure than the tenant.
echo "  sed 's/@@STRUCTURE_ID@@/$first/g' tests/samples/dmp-iti41-provide-and-register.xml |"
echo "    curl -i -H 'X-Orgproxy-Tenant: $first' -H 'Content-Type: application/soap+xml' --data-binary @- http://127.0.0.1:$ORGPROXY_PORT/dmp/repository"
wait "$daemon_pid" || true
echo "orgproxy exited; its log: $work/orgproxy.log"
tail -n 20 "$work/orgproxy.log"
