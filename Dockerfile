# GenService image. CPU (default) or GPU:
#   docker build -t genservice:cpu .
#   docker build --build-arg FLAVOR=gpu -t genservice:gpu .
# The whole test suite in the SDK image (the `test` stage; the default build does not run it). A few tests read third-
# party fixtures (real tokenizer vocabularies) kept beside the repository, never inside it; name that folder:
#   docker buildx build --target test --build-context shared=DIR .   (DIR/fixtures/tokenizers/clip: CLIP's vocab.json, merges.txt)
#   docker run -p 8080:8080 genservice:cpu        # Swagger UI: http://localhost:8080/swagger
# The shipped models/ are baked in at /app/models; mount another folder there (or set
# GenService__ModelRepository) to serve your own.
# API keys: only their SHA-256 is configured. Without an admin key the repository API (/v2/repository/*) answers
# only to loopback callers, i.e. not through -p; to manage models from outside the container:
#   KEY=$(openssl rand -hex 32)
#   docker run -p 8080:8080 -e GenService__Auth__Keys__0__Name=ops -e GenService__Auth__Keys__0__Role=admin \
#     -e GenService__Auth__Keys__0__Sha256=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1) genservice:cpu
#   curl -X POST -H "Authorization: Bearer $KEY" localhost:8080/v2/repository/index
# GenService__Auth__RequireKey=true refuses anonymous callers; docs/http-api.md#authentication has the rest.
ARG FLAVOR=cpu

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG FLAVOR
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props GenService.sln .editorconfig ./
# Restore from the project files alone: the package layer is rebuilt only when a project or package version changes.
COPY src/GenService.Api/GenService.Api.csproj src/GenService.Api/
COPY src/GenService.Generation/GenService.Generation.csproj src/GenService.Generation/
COPY src/GenService.Inference/GenService.Inference.csproj src/GenService.Inference/
COPY src/GenService.Sampling/GenService.Sampling.csproj src/GenService.Sampling/
RUN dotnet restore src/GenService.Api -r linux-x64 -p:OnnxRuntimeFlavor=${FLAVOR}
COPY src/ src/
# OnnxRuntimeFlavor=gpu swaps Microsoft.ML.OnnxRuntime for Microsoft.ML.OnnxRuntime.Gpu.Linux (CUDA 13; 321 MB publish).
# -r linux-x64 (framework-dependent) keeps only the Linux x64 natives of ONNX Runtime and SkiaSharp: the CPU publish
# is 46 MB instead of 712 MB with every platform's runtimes/ (Windows, macOS, Android, iOS, ARM).
RUN dotnet publish src/GenService.Api -c Release -o /app -r linux-x64 --self-contained false --no-restore \
        -p:OnnxRuntimeFlavor=${FLAVOR} -p:UseAppHost=false

# Tests: the repository (less .dockerignore's list) at /src/repo and the fixtures at /src/shared, so the tests find
# ../shared/fixtures, as in the CI checkout; .ci/run is the CI entry point (it ends "N passed, N failed" and
# fails the build when a test fails). The deployment-file tests install yamllint, promtool and their npm tools on
# first use (apt-get and npm, as root here).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS test
WORKDIR /src/repo
COPY --from=shared fixtures /src/shared/fixtures
COPY . .
RUN .ci/run

# Runtime bases: the ASP.NET image for the CPU, CUDA 13 + cuDNN with the ASP.NET runtime added for the GPU.
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime-cpu

FROM nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 AS runtime-gpu
COPY --from=mcr.microsoft.com/dotnet/aspnet:10.0 /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
    && apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV GenService__ExecutionProvider=cuda

FROM runtime-${FLAVOR} AS final
WORKDIR /app
COPY --from=build /app ./
COPY models/ ./models/
ENV ASPNETCORE_URLS=http://+:8080 \
    GenService__ModelRepository=/app/models \
    DOTNET_gcServer=1
# A fixed non-root uid (the .NET images' "app" user is 1654; the CUDA image has none, so make one).
RUN (id -u app >/dev/null 2>&1 || useradd --uid 1654 --no-create-home --shell /usr/sbin/nologin app) \
    && rm -rf /app/models/training
USER 1654
EXPOSE 8080
# No curl in the ASP.NET image: bash's /dev/tcp speaks enough HTTP/1.0 for a health check. Readiness: healthy once the startup load pass
# has ended and until shutdown begins (a broken model does not make the container unhealthy).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /v2/health/ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dotnet", "GenService.Api.dll"]
