# Per-RUN overhead natively (issue 12: at most 30 ms a step): a Dockerfile with 21 trivial RUN
# steps against one with 1, for linux/amd64, no push (an OCI layout for polyarch, the image
# store for BuildKit); the difference divided by 20 is what one more step costs. polyarch runs
# its steps on the default network (its own namespace + pasta) and with --network=none;
# BuildKit with `docker build --network none` (its dockerd here has no bridge). A changing
# build arg defeats every cache. Set POLYARCH_BASELINE=/path/to/polyarch (e.g. a release build
# of main) to measure that binary in the same run, as "before".
bench_step_overhead() {
  local work i n
  work=$(mktemp -d)
  ensure_buildkit
  # `plain`: `RUN true` (the default network; Debian's BuildKit 20.10 frontend knows no
  # `RUN --network`, its network is `docker build --network none`); `none`: `RUN --network=none`.
  for n in 1 21; do
    for net in plain none; do
      local ctx="$work/ctx-$n-$net" flag=""
      [ "$net" = none ] && flag="--network=none "
      mkdir -p "$ctx"
      {
        printf 'FROM %s\nARG RUN_ID\n' "$BASE_IMAGE"
        for i in $(seq 1 "$n"); do printf 'RUN %strue\n' "$flag"; done
      } > "$ctx/Dockerfile"
    done
  done
  local pa_default_1=() pa_default_21=() pa_none_1=() pa_none_21=() bk_1=() bk_21=()
  local base_1=() base_21=()
  for i in $(seq 1 "$RUNS"); do
    for n in 1 21; do
      local id="$i-$n-$RANDOM$RANDOM"
      timed "pa_default_$n" "$POLYARCH" build --progress plain --platform linux/amd64 \
        --build-arg "RUN_ID=$id" -o "type=oci,dest=$work/out" "$work/ctx-$n-plain"
      timed "pa_none_$n" "$POLYARCH" build --progress plain --platform linux/amd64 \
        --build-arg "RUN_ID=$id" -o "type=oci,dest=$work/out" "$work/ctx-$n-none"
      if [ -n "${POLYARCH_BASELINE:-}" ]; then
        timed "base_$n" "$POLYARCH_BASELINE" build --progress plain --platform linux/amd64 \
          --build-arg "RUN_ID=$id" -o "type=oci,dest=$work/out" "$work/ctx-$n-plain"
      fi
      # shellcheck disable=SC2086 # BUILDKIT_DOCKER is a command with its environment
      timed "bk_$n" $BUILDKIT_DOCKER build -q --network none --platform linux/amd64 \
        --build-arg "RUN_ID=$id" -t "bench/steps:$n" "$work/ctx-$n-plain"
    done
    printf 'run %d: polyarch default %.2fs/%.2fs  none %.2fs/%.2fs  buildkit %.2fs/%.2fs (1/21 steps)\n' \
      "$i" "${pa_default_1[-1]}" "${pa_default_21[-1]}" "${pa_none_1[-1]}" "${pa_none_21[-1]}" \
      "${bk_1[-1]}" "${bk_21[-1]}"
  done
  # ms per step: (median with 21 steps - median with 1) / 20.
  per_step() {
    local -n _one=$1 _many=$2
    local a b
    a=$(printf '%s\n' "${_one[@]}" | median)
    b=$(printf '%s\n' "${_many[@]}" | median)
    echo "($b - $a) * 1000 / 20" | bc -l
  }
  local pd pn bk
  pd=$(per_step pa_default_1 pa_default_21)
  pn=$(per_step pa_none_1 pa_none_21)
  bk=$(per_step bk_1 bk_21)
  printf 'median of %d runs, per RUN step: polyarch (default network, pasta) %.1f ms, polyarch (--network=none) %.1f ms, buildkit (--network none) %.1f ms (ratio polyarch-default/buildkit %.2f, polyarch-none/buildkit %.2f)\n' \
    "$RUNS" "$pd" "$pn" "$bk" "$(echo "$pd / $bk" | bc -l)" "$(echo "$pn / $bk" | bc -l)"
  if [ -n "${POLYARCH_BASELINE:-}" ]; then
    printf 'baseline %s (its default network, before): %.1f ms per RUN step\n' "$POLYARCH_BASELINE" "$(per_step base_1 base_21)"
  fi
  rm -rf "$work"
}
