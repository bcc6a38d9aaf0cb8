#!/usr/bin/env bash
# Installs everything `make demo`, `make test` and `make bench` need on a bare Debian machine:
# the lab's network tools from Debian, and a virtualenv with hopscope and its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

# prometheus: only for promtool, which checks the operator's /metrics exposition and alerts;
# time: GNU time, which measures the benchmarks' peak RSS.
debian_packages=(iproute2 iptables nftables dnsmasq-base traceroute mtr-tiny iputils-ping
                 libnetfilter-queue-dev openssl procps gcc python3-dev prometheus time)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  apt-get update -qq
  # Install the tools without starting their daemons (a Prometheus server must not start
  # listening here): policy-rc.d answers "not allowed" to every service start meanwhile.
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; added_policy=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "${added_policy:-}" ] || rm -f "$policy"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
