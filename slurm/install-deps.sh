#!/usr/bin/env bash
# Install what slurm/cluster.sh needs (Debian/Ubuntu, as root): SLURM's controller, node daemon and client
# commands, munge, and slurmdbd with a MariaDB server for accounting (submitit reads job states only from
# sacct). Installs only the packages that are missing; safe to run again (CI runs it every time).
#
# The test cluster runs its own daemons on private ports and sockets. The packages' own services (default
# ports 6817-6819 and 3306, /run/munge) would not conflict with it, but they are not wanted on a test
# machine either: a policy-rc.d keeps the packages from starting them during the install, and on a systemd
# host the services of the packages installed here are disabled afterwards.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (apt-get install)" >&2
  exit 1
fi

declare -A service_of=([slurmctld]=slurmctld [slurmd]=slurmd [slurm-client]="" [munge]=munge
  [slurmdbd]=slurmdbd [mariadb-server]=mariadb)
packages=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: already installed: ${packages[*]}"
  exit 0
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
      echo "install-deps.sh: disabled the system's $unit service (the test cluster runs its own)"
    fi
  done
fi
echo "install-deps.sh: done; start a test cluster with: slurm/cluster.sh up"
