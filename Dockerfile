# One image for every BatchCluster role. The build stage runs the TorchSharp native patch, which
# is a no-op on this base (its libstdc++ is new enough; docs/decisions.md). The data set is not baked in:
# docker-compose.yml mounts the host's Fashion-MNIST (Debian: apt-get install dataset-fashion-mnist).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet build src/BatchCluster.Cli/BatchCluster.Cli.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/runtime:10.0
COPY --from=build /app /app
WORKDIR /work
ENTRYPOINT ["dotnet", "/app/batchcluster.dll"]
