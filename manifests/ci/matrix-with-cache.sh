#!/bin/sh
# A CI matrix with a shared step cache: one job per platform builds and pushes its image by
# digest and exports its steps to ONE cache tag; the jobs merge their entries there (they do
# not overwrite each other), so on the next pipeline every job finds its steps cached. The final
# job stitches the index. Run the jobs as separate CI jobs (each on an empty state directory is
# fine); this file spells out what each runs. Exit 3 means: retry the job.
set -eu
REPO=${REPO:-registry.example/team/app}
CACHE=$REPO:buildcache
CONTEXT=${CONTEXT:-./app}

job() { # job PLATFORM NAME
  polyarch build --platform "$1" \
    --cache-from "type=registry,ref=$CACHE" \
    --cache-to "type=registry,ref=$CACHE,mode=max" \
    --push-by-digest "$REPO" --metadata-file "meta/$2.json" "$CONTEXT"
}

case "${1:-}" in
  amd64) job linux/amd64 amd64 ;;        # matrix job 1
  arm64) job linux/arm64 arm64 ;;        # matrix job 2 (a native arm64 runner, or qemu)
  merge)                                 # the final job, with every job's meta/*.json
    polyarch merge --platforms linux/amd64,linux/arm64 -t "$REPO:${TAG:-latest}" @meta ;;
  *) echo "usage: $0 amd64|arm64|merge" >&2; exit 2 ;;
esac
