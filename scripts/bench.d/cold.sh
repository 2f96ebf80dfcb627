# A cold two-platform build + push of manifests/examples/hello (linux/amd64 natively,
# linux/arm64/v8 under qemu): polyarch, buildah (`build --platform A,B --manifest L` then
# `manifest push --all`) and BuildKit (the classic recipe: one `docker build` per platform at
# once, `docker push` each, `docker manifest create` + `push`). `--no-cache` for polyarch and
# BuildKit (buildah without --layers caches nothing) and a changing build arg, so each run
# really builds: an undeclared build arg alone busts no step cache.
bench_cold() {
  local ctx="$REPO/manifests/examples/hello" platforms=linux/amd64,linux/arm64/v8 i
  ensure_buildkit
  local polyarch=() buildah=() buildkit=()
  for i in $(seq 1 "$RUNS"); do
    local id="$i-$RANDOM$RANDOM"
    timed polyarch "$POLYARCH" build --progress plain --no-cache --platform "$platforms" --build-arg "RUN_ID=$id" \
      -t "$REGISTRY/bench/polyarch:cold$i" --push "$ctx"
    buildah rmi -f "bench-list-$i" >/dev/null 2>&1 || true
    timed buildah bash -c "buildah build --quiet --isolation chroot --platform $platforms \
      --build-arg RUN_ID=$id --manifest bench-list-$i $ctx >/dev/null &&
      buildah manifest push --quiet --all --format oci --tls-verify=false bench-list-$i \
      docker://$REGISTRY/bench/buildah:cold$i"
    timed buildkit bash -c "
      $BUILDKIT_DOCKER build -q --no-cache --network none --platform linux/amd64 --build-arg RUN_ID=$id \
        -t $REGISTRY/bench/buildkit:cold$i-amd64 $ctx >/dev/null & a=\$!
      $BUILDKIT_DOCKER build -q --no-cache --network none --platform linux/arm64/v8 --build-arg RUN_ID=$id \
        -t $REGISTRY/bench/buildkit:cold$i-arm64 $ctx >/dev/null & b=\$!
      wait \$a && wait \$b &&
      $BUILDKIT_DOCKER push -q $REGISTRY/bench/buildkit:cold$i-amd64 >/dev/null &&
      $BUILDKIT_DOCKER push -q $REGISTRY/bench/buildkit:cold$i-arm64 >/dev/null &&
      $BUILDKIT_DOCKER manifest create --amend --insecure $REGISTRY/bench/buildkit:cold$i \
        $REGISTRY/bench/buildkit:cold$i-amd64 $REGISTRY/bench/buildkit:cold$i-arm64 >/dev/null &&
      $BUILDKIT_DOCKER manifest push --purge --insecure $REGISTRY/bench/buildkit:cold$i >/dev/null"
    printf 'run %d: polyarch %.2fs  buildah %.2fs  buildkit %.2fs\n' "$i" "${polyarch[-1]}" "${buildah[-1]}" "${buildkit[-1]}"
  done
  report "cold two-platform build+push" polyarch buildah buildkit
}
