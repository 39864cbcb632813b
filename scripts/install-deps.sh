#!/usr/bin/env bash
# Installs the Debian 12 packages orgproxy needs to build, test and run its demo.
# Idempotent; needs root (or sudo). Package installs must never start system services
# (nginx, slapd, dovecot...): a policy-rc.d that forbids service starts is put in place first,
# and removed again only if this script created it.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libssl-dev openssl libp11-kit-dev p11-kit softhsm2
  libyaml-cpp-dev libspdlog-dev libfmt-dev prometheus-cpp-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsystemd-dev libxml2-dev
  nginx curl procps python3 python3-zeep opensc
  libldap2-dev slapd ldap-utils
  prometheus systemd dpkg-dev
  dovecot-imapd python3-aiosmtpd
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# orgproxy: forbid service starts during package installs\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 0755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

echo "orgproxy: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
