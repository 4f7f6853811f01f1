#!/usr/bin/env bash
# Installs what BatchCluster needs on Debian 12 and is missing; does nothing when all is there.
#   - the real Fashion-MNIST (Debian package dataset-fashion-mnist)
#   - gcc, which builds the MKL CPU-dispatch shim (docs/decisions.md, "MKL kernels on AMD CPUs")
#   - openssl, with which scripts/make-test-certs.sh makes a cluster's TLS certificates (docs/security.md)
#   - iproute2 (ip, tc), with which scripts/sim-hosts.sh makes simulated hosts with shaped links
#   - g++ and patchelf, only where the system libstdc++ is too old for TorchSharp (docs/decisions.md)
#   - any further Debian packages named as arguments (scripts/test.sh asks for Docker, debootstrap and Prometheus
#     for the container and monitoring tests)
# The .NET SDK itself is a precondition (see README).
set -euo pipefail

if ! command -v dotnet >/dev/null 2>&1; then
  echo "install-prerequisites: the .NET SDK (10 or newer) is not on PATH; install it first (see README)" >&2
  exit 1
fi

wanted=(dataset-fashion-mnist gcc openssl iproute2 "$@")
libstdcxx=$(/sbin/ldconfig -p 2>/dev/null | awk '!found && /libstdc\+\+\.so\.6 .*x86-64/ {print $NF; found = 1}')
if [ -z "$libstdcxx" ] || ! grep -qa GLIBCXX_3.4.32 "$libstdcxx"; then
  wanted+=(g++ patchelf)
fi

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=sudo; else
    echo "install-prerequisites: missing packages ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-prerequisites: installing ${missing[*]}" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
