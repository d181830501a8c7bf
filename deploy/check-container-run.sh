#!/usr/bin/env bash
# Exercises the image's publish command and entrypoint without a container engine (none runs on these machines):
# publishes exactly as the Dockerfile does, lays the app and the shipped models out as the image does (/app, /app/models,
# read-only, as with readOnlyRootFilesystem), starts `dotnet GenService.Api.dll` as the image's non-root user (uid
# 1654) with the image's environment, puts it under load, sends SIGTERM (what `docker stop` and Kubernetes send) and
# checks that no accepted request is lost. Output: a Markdown report on stdout (docs/reliability.md has one).
#
#   deploy/check-container-run.sh            # FLAVOR=gpu for the GPU publish (needs a CUDA machine to run)
set -euo pipefail
cd "$(dirname "$0")/.."
flavor="${FLAVOR:-cpu}"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
chmod 755 "$work"

# The Dockerfile's build stage, to the image's /app layout.
dotnet publish src/GenService.Api -c Release -o "$work/app" -r linux-x64 --self-contained false \
    -p:OnnxRuntimeFlavor="$flavor" -p:UseAppHost=false >&2
echo "published app: $(du -sh "$work/app" | cut -f1)" >&2
cp -r models "$work/app/models"
rm -rf "$work/app/models/training"
chmod -R a+rX,a-w "$work/app"

dotnet build src/GenService.Bench -c Release >&2
dotnet run --project src/GenService.Bench -c Release --no-build -- reliability sigterm \
    --dll "$work/app/GenService.Api.dll" --uid 1654 --models "$work/app/models"
