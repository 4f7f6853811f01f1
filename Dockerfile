# One image for every BatchCluster role, for machines that reach an image registry (Microsoft's by default).
# Without a registry, scripts/docker-image.sh builds the same image from a Debian 12 base made with debootstrap
# (scripts/docker/Dockerfile.published; docs/decisions.md, "Container base image"). Either way the tool is published
# self-contained for linux-x64 with its native libraries (libtorch, the MKL dispatch shim): the image has no SDK.
#   docker build -t batchcluster:latest .                      # or with --build-arg SDK_IMAGE=… BASE_IMAGE=…
# The data set is not baked in: docker-compose.yml mounts the host's Fashion-MNIST (Debian: apt-get install dataset-fashion-mnist).
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG BASE_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0

FROM ${SDK_IMAGE} AS build
WORKDIR /src
COPY . .
# gcc builds the MKL dispatch shim (scripts/native); the libstdc++ patch is a no-op where the base is new enough.
RUN (command -v gcc >/dev/null || (apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev)) \
 && dotnet publish src/BatchCluster.Cli/BatchCluster.Cli.csproj -c Release -r linux-x64 --self-contained -o /app

FROM ${BASE_IMAGE}
COPY --from=build /app /app
WORKDIR /work
ENTRYPOINT ["/app/batchcluster"]
