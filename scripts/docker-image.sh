#!/usr/bin/env bash
# Builds the BatchCluster container image and prints its size.
#
# Usage: scripts/docker-image.sh [--from debootstrap|registry] [--tag NAME] [--with-prometheus]
#   --from debootstrap (default): needs no image registry. A Debian 12 base image is made once with
#       `debootstrap --variant=minbase` from Debian's package archive and imported (batchcluster-base:bookworm;
#       reused when present: delete it with `docker rmi batchcluster-base:bookworm` to make it afresh), the tool
#       is published self-contained for linux-x64 on this machine, and scripts/docker/Dockerfile.published copies
#       it onto the base. Needs root (debootstrap) the first time, and a Docker engine.
#   --from registry: the multi-stage Dockerfile at the top (Microsoft's SDK and runtime-deps images; give other
#       bases with BATCHCLUSTER_SDK_IMAGE / BATCHCLUSTER_BASE_IMAGE).
#   --tag NAME: the image's name [default: batchcluster:latest, which docker-compose.yml runs].
#   --with-prometheus: also make batchcluster-prometheus:local, Debian's Prometheus server (apt-get install prometheus;
#       one binary that needs only libc) on the same base, for the compose file's metrics profile where prom/prometheus
#       cannot be pulled: BATCHCLUSTER_PROMETHEUS_IMAGE=batchcluster-prometheus:local docker compose --profile metrics up -d
# Environment: BATCHCLUSTER_DEBIAN_MIRROR, the archive debootstrap reads [default: debootstrap's own].
# docs/decisions.md ("Container base image") says why; README "Containers" how to run it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
from=debootstrap
tag=batchcluster:latest
base=batchcluster-base:bookworm
with_prometheus=false
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=${2:?--from takes debootstrap or registry}; shift 2 ;;
    --tag) tag=${2:?--tag takes an image name}; shift 2 ;;
    --with-prometheus) with_prometheus=true; shift ;;
    *) echo "docker-image.sh: unknown argument '$1' (usage: scripts/docker-image.sh [--from debootstrap|registry] [--tag NAME] [--with-prometheus])" >&2; exit 2 ;;
  esac
done
case "$from" in debootstrap|registry) ;; *) echo "docker-image.sh: --from takes debootstrap or registry, not '$from'" >&2; exit 2 ;; esac

if ! docker info >/dev/null 2>&1; then
  echo "docker-image.sh: no Docker engine answers (docker info failed); install docker.io and start it (as root: dockerd &), then run this again" >&2
  exit 1
fi

if [ "$from" = registry ]; then
  docker build -t "$tag" \
    --build-arg "SDK_IMAGE=${BATCHCLUSTER_SDK_IMAGE:-mcr.microsoft.com/dotnet/sdk:10.0}" \
    --build-arg "BASE_IMAGE=${BATCHCLUSTER_BASE_IMAGE:-mcr.microsoft.com/dotnet/runtime-deps:10.0}" "$root"
else
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "docker-image.sh: making the base image $base needs root (debootstrap); run this as root once (later builds reuse it)" >&2
      exit 1
    fi
    command -v debootstrap >/dev/null || { echo "docker-image.sh: debootstrap is missing; apt-get install -y debootstrap" >&2; exit 1; }
    rootfs=$(mktemp -d /tmp/batchcluster-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "docker-image.sh: making $base with debootstrap (once; about a minute)" >&2
    # minbase: essential packages and apt only. libssl3: .NET's TLS and certificates (the nodes' mutual TLS).
    debootstrap --variant=minbase --include=libssl3 bookworm "$rootfs" ${BATCHCLUSTER_DEBIAN_MIRROR:-} >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
  fi
  # The tool, published self-contained (its own .NET runtime, libtorch and the MKL shim) into the image's build context.
  context="$root/artifacts/image"
  rm -rf "$context"
  mkdir -p "$context"
  cp "$root/scripts/docker/Dockerfile.published" "$context/Dockerfile"
  echo "docker-image.sh: publishing the tool self-contained for linux-x64" >&2
  dotnet publish "$root/src/BatchCluster.Cli/BatchCluster.Cli.csproj" -c Release -r linux-x64 --self-contained -o "$context/app" -nologo -v quiet >&2
  # The legacy builder: Debian's docker.io has no buildx, and this single-stage build needs nothing of BuildKit.
  DOCKER_BUILDKIT=0 docker build -q -t "$tag" --build-arg "BASE_IMAGE=$base" "$context" >/dev/null
  rm -rf "$context" # the image holds it now; ~600 MB
fi

if [ "$with_prometheus" = true ]; then
  [ -x /usr/bin/prometheus ] || { echo "docker-image.sh: --with-prometheus copies Debian's Prometheus server, which is missing: apt-get install -y prometheus" >&2; exit 1; }
  docker image inspect "$base" >/dev/null 2>&1 || { echo "docker-image.sh: --with-prometheus builds on $base: run without --from registry once to make it" >&2; exit 1; }
  context="$root/artifacts/prometheus-image"
  rm -rf "$context"
  mkdir -p "$context"
  cp /usr/bin/prometheus "$context/prometheus"
  printf 'FROM %s\nCOPY prometheus /bin/prometheus\nWORKDIR /prometheus\nENTRYPOINT ["/bin/prometheus"]\n' "$base" > "$context/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t batchcluster-prometheus:local "$context" >/dev/null
  echo "batchcluster-prometheus:local: $(($(docker image inspect -f '{{.Size}}' batchcluster-prometheus:local) / 1000000)) MB"
fi

# It starts: the tool answers inside the image (a missing library would fail here, not in the first run).
docker run --rm "$tag" --version >/dev/null
bytes=$(docker image inspect -f '{{.Size}}' "$tag")
echo "$tag: $((bytes / 1000000)) MB (libtorch's CPU library alone is about 460 MB of it)"
