#!/usr/bin/env bash
# Install the Debian packages dicomnode's tests and tools use, or say how.
# Usage: scripts/system-deps.sh PACKAGE...
set -euo pipefail
declare -A probe=([dcmtk]=storescu [dicom3tools]=dciodvfy [redis-server]=redis-server
                  [postgresql]=/usr/lib/postgresql [orthanc]=Orthanc [make]=make [systemd]=systemd-analyze
                  [chromium-driver]=chromedriver)
missing=()
for p in "$@"; do
  what=${probe[$p]:-$p}
  if [[ $what == /* ]]; then [ -e "$what" ] || missing+=("$p")
  else command -v "$what" >/dev/null 2>&1 || missing+=("$p"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
