#!/usr/bin/env bash
# The system packages the tests use (Debian/Ubuntu): SLURM's controller, node daemon and client commands,
# munge, slurmdbd with a MariaDB server for accounting (submitit reads job states only from sacct), and the
# PostgreSQL server binaries (the results-store tests start a private server with initdb + pg_ctl).
# `make install` runs this as root; `make system-deps` runs it alone.
#
#   slurm/install-deps.sh            install the missing packages (root); does nothing when all are there
#   slurm/install-deps.sh --check    list the missing ones and exit 1 if any (any user; changes nothing)
#
# The tests run their own daemons on private ports and sockets. The packages' own services (ports 6817-6819,
# 3306, 5432, /run/munge) would not conflict, but they are not wanted on a test machine either: a
# policy-rc.d keeps the packages from starting them during the install, and on a systemd host the services
# of the packages installed here are disabled afterwards.
set -euo pipefail

declare -A service_of=([slurmctld]=slurmctld [slurmd]=slurmd [slurm-client]="" [munge]=munge
  [slurmdbd]=slurmdbd [mariadb-server]=mariadb [postgresql]=postgresql)
packages=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server postgresql)

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install-deps.sh: not a Debian/Ubuntu system (no dpkg/apt-get); install by hand the equivalents of:" \
    "${packages[*]} (binaries: munged mariadbd slurmdbd slurmctld slurmd sbatch sacct initdb pg_ctl)" >&2
  exit 1
fi
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${1:-}" = "--check" ]; then
  if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps.sh: system packages present: ${packages[*]}"
    exit 0
  fi
  echo "install-deps.sh: missing system packages: ${missing[*]}"
  exit 1
elif [ $# -gt 0 ]; then
  echo "install-deps.sh: unknown argument $1 (usage: install-deps.sh [--check])" >&2
  exit 2
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: already installed: ${packages[*]}"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: missing ${missing[*]}; run as root: sudo $0" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then # exit status 101: "action forbidden", honoured by invoke-rc.d and deb-systemd-invoke
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  for p in "${missing[@]}"; do
    unit=${service_of[$p]}
    if [ -n "$unit" ] && systemctl list-unit-files "$unit.service" >/dev/null 2>&1; then
      systemctl disable --now --quiet "$unit" 2>/dev/null || true
      echo "install-deps.sh: disabled the system's $unit service (the tests run their own)"
    fi
  done
fi
echo "install-deps.sh: done"
