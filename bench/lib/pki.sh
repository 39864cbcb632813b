# shellcheck shell=bash
# Test PKI and SoftHSM token for the bench, cached under bench/cache/ (gitignored).
# Shaped like IGC Santé TEST: root "TEST AC RACINE BENCH" → intermediate "TEST AC BENCH ORGANISATIONS"
# (orgproxy reads the TEST/production environment from the issuer CN); the upstream's server certificate and
# every site's ORG client certificate (C=FR, ST, O, OU=<site id>, CN) are issued by the intermediate.
# The same key of a site is a PEM file (for nginx) and an object in the token (for orgproxy, and for nginx's
# engine variant): softhsm2-util --import marks it CKA_SENSITIVE and not CKA_EXTRACTABLE, so orgproxy takes
# it without `pkcs11.allow_extractable_keys`.
# Sourced by bench/run; needs CACHE, BENCH_DIR and log() from common.sh.

PIN=bench-pin-2718
SO_PIN=bench-so-3141

# pki_init: CA, intermediate, upstream server certificate (once).
pki_init() {
  local d=$CACHE/pki
  mkdir -p "$d"
  [ -f "$d/ca-bundle.pem" ] && return 0
  log "PKI: creating TEST CAs and the upstream server certificate in $d"
  cat > "$d/ext.cnf" <<'EOC'
[v3_root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[v3_inter]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[v3_server]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier=keyid
[v3_client]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid
EOC
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 3650 -sha256 \
      -subj "/C=FR/O=ASIP-SANTE BENCH/CN=TEST AC RACINE BENCH" \
      -config <(cat /usr/lib/ssl/openssl.cnf ext.cnf) -extensions v3_root 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -keyout org.key -subj \
      "/C=FR/O=ASIP-SANTE BENCH/CN=TEST AC BENCH ORGANISATIONS" 2>/dev/null |
      openssl x509 -req -CA root.pem -CAkey root.key -set_serial 2 -days 3650 -sha256 \
        -extfile ext.cnf -extensions v3_inter -out org.pem 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -keyout server.key -subj "/C=FR/O=Bench Upstream/CN=localhost" \
      2>/dev/null |
      openssl x509 -req -CA org.pem -CAkey org.key -set_serial 3 -days 3650 -sha256 \
        -extfile ext.cnf -extensions v3_server -out server.leaf.pem 2>/dev/null
    cat server.leaf.pem org.pem > server.pem
    chmod 0600 ./*.key
    cat org.pem root.pem > ca-bundle.pem.tmp && mv ca-bundle.pem.tmp ca-bundle.pem
  )
}

# pki_sites N KT: the first N sites' keys (KT = rsa: RSA-2048, ec: P-256) and certificate chains
# (leaf + intermediate) under $CACHE/pki/sites-KT/<id>.{key,pem}; the id list in $CACHE/sites-N.list.
pki_sites() {
  local n=$1 kt=$2 d=$CACHE/pki list=$CACHE/sites-$1.list
  [ -s "$list" ] || python3 "$BENCH_DIR/lib/site_ids.py" "$n" > "$list"
  mkdir -p "$d/sites-$kt"
  local missing
  missing=$(awk -v dir="$d/sites-$kt" '{ f = dir "/" $1 ".pem"; if ((getline line < f) < 0) print NR - 1 " " $1 " " $2; close(f) }' "$list")
  [ -z "$missing" ] && return 0
  log "PKI: issuing $(wc -l <<< "$missing") $kt site certificate(s) (cached for later runs)"
  local newkey="rsa:2048"
  [ "$kt" = ec ] && newkey="ec:$d/p256.params" && openssl ecparam -name prime256v1 -out "$d/p256.params"
  # Two openssl processes per site; xargs spreads them over the cores.
  PKI_DIR=$d KT=$kt NEWKEY=$newkey xargs -P "$(nproc)" -L 1 bash -c '
    i=$0 id=$1 sector=$2
    k=$PKI_DIR/sites-$KT/$id.key c=$PKI_DIR/sites-$KT/$id.pem
    openssl req -new -newkey "$NEWKEY" -nodes -keyout "$k.tmp" -sha256 \
      -subj "/C=FR/ST=75/O=Bench Site $i/OU=$id/CN=Bench Site $i $sector" 2>/dev/null |
      openssl x509 -req -CA "$PKI_DIR/org.pem" -CAkey "$PKI_DIR/org.key" -set_serial $((100000 + i)) \
        -days 3650 -sha256 -extfile "$PKI_DIR/ext.cnf" -extensions v3_client -out "$c.tmp" 2>/dev/null || exit 255
    cat "$PKI_DIR/org.pem" >> "$c.tmp"
    chmod 0600 "$k.tmp"; mv "$k.tmp" "$k"; mv "$c.tmp" "$c"' <<< "$missing"
}

# token_env KT: SOFTHSM2_CONF for the token of KT keys (label bench-KT), created when missing.
token_env() {
  local kt=$1 t=$CACHE/token-$1
  mkdir -p "$t/objects"
  export SOFTHSM2_CONF=$t/softhsm2.conf
  if [ ! -f "$t/softhsm2.conf" ]; then
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
      "$t/objects" > "$t/softhsm2.conf"
  fi
  printf '%s' "$PIN" > "$t/pin"
  chmod 0600 "$t/pin"
  if ! softhsm2-util --show-slots 2>/dev/null | grep -q "Label: *bench-$kt *$"; then
    softhsm2-util --init-token --free --label "bench-$kt" --pin "$PIN" --so-pin "$SO_PIN" >/dev/null
  fi
  TOKEN_LABEL=bench-$kt
  TOKEN_PIN_FILE=$t/pin
}

# token_import N KT: imports the first N sites' KT keys into the token (label <id>-dmp, CKA_ID = row
# number), skipping those already imported (recorded in imported.list).
token_import() {
  local n=$1 kt=$2 t=$CACHE/token-$2 list=$CACHE/sites-$1.list done_list
  token_env "$kt"
  done_list=$t/imported.list
  touch "$done_list"
  local todo
  todo=$(awk -v done_list="$done_list" 'BEGIN { while ((getline l < done_list) > 0) have[l] = 1 } !($1 in have) { print NR " " $1 }' "$list")
  [ -z "$todo" ] && return 0
  log "token: importing $(wc -l <<< "$todo") $kt key(s) into bench-$kt (cached for later runs)"
  if [ -x "${TOKEN_BULK_IMPORT:-}" ]; then
    # One session for every key: softhsm2-util re-reads the whole token per key (quadratic at 10,000).
    awk -v dir="$CACHE/pki/sites-$kt" '{ printf "%s/%s.key %s-dmp %08x\n", dir, $2, $2, $1 }' <<< "$todo" > "$t/import.todo"
    "$TOKEN_BULK_IMPORT" "$SOFTHSM_MODULE" "bench-$kt" "$TOKEN_PIN_FILE" "$t/import.todo" |
      sed 's/-dmp$//' >> "$done_list" || die "token_bulk_import failed (see above)"
    return 0
  fi
  local row id
  while read -r row id; do
    softhsm2-util --import "$CACHE/pki/sites-$kt/$id.key" --token "bench-$kt" --label "$id-dmp" \
      --id "$(printf '%08x' "$row")" --pin "$PIN" >/dev/null ||
      die "softhsm2-util --import failed for site $id"
    echo "$id" >> "$done_list"
  done <<< "$todo"
}
