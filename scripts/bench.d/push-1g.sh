# A 1 GiB layer built and pushed (issue 13): `COPY` of a 1 GiB file of mixed content (a quarter
# random bytes, half base64 text, a quarter repetitive log lines) plus a per-run nonce, so that
# every run makes and uploads a new layer, to a private throw-away docker-registry on loopback.
# Side by side in one run: `pigz -p 2 -6` compressing the same tar (the yardstick: polyarch's
# whole build+push should take at most 1.2x pigz's compression time), and BuildKit building and
# pushing the same context. Peak RSS of polyarch by GNU time (limit 100 MiB).
bench_push_1g() {
  PACKAGES+=(pigz time)
  ensure_packages
  ensure_buildkit
  local work="$STATE/bench-push-1g" i port= reg_pid=
  rm -rf "$work" && mkdir -p "$work/ctx" "$work/registry"
  for port in $(seq 5191 5290); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  done
  printf 'version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$work/registry/data" "$port" > "$work/registry/config.yml"
  docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
  reg_pid=$!
  # shellcheck disable=SC2064
  # A RETURN trap outlives the function (it would fire on every later return, and fail the
  # run under set -e once the registry is gone): it removes itself.
  trap "kill $reg_pid 2>/dev/null || true; rm -rf '$work'; trap - RETURN" RETURN
  for i in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break; sleep 0.1; done
  local reg="127.0.0.1:$port"

  log "writing 1 GiB of mixed content"
  # (`head` closing a pipe early is expected here: SIGPIPE upstream is not a failure.)
  {
    head -c 256M /dev/urandom
    head -c 384M /dev/urandom | base64 -w 76 | head -c 512M || true
    yes '2026-12-05T12:00:00Z INFO polyarch: pushed blob sha256:0123456789abcdef to registry' | head -c 256M || true
  } > "$work/ctx/big"
  [ "$(stat -c %s "$work/ctx/big")" -eq $((1 << 30)) ] || die "the 1 GiB context file came out wrong" 1
  printf 'FROM scratch\nCOPY big nonce /data/\n' > "$work/ctx/Dockerfile"
  tar -C "$work/ctx" -cf "$work/big.tar" big

  local polyarch=() pigz=() buildkit=() rss=()
  for i in $(seq 1 "$RUNS"); do
    echo "$i-$RANDOM$RANDOM" > "$work/ctx/nonce"
    rm -rf "$work/state"
    timed polyarch /usr/bin/time -f '%M' -o "$work/rss" env POLYARCH_STATE_DIR="$work/state" \
      "$POLYARCH" build --progress plain --platform linux/amd64 \
      -t "$reg/bench/polyarch:1g-$i" --push "$work/ctx"
    rss+=("$(tail -1 "$work/rss")")
    timed pigz bash -c "pigz -p 2 -6 -c '$work/big.tar' > /dev/null"
    timed buildkit bash -c "
      $BUILDKIT_DOCKER build -q --network none -t $reg/bench/buildkit:1g-$i $work/ctx >/dev/null &&
      $BUILDKIT_DOCKER push -q $reg/bench/buildkit:1g-$i >/dev/null &&
      $BUILDKIT_DOCKER rmi -f $reg/bench/buildkit:1g-$i >/dev/null"
    printf 'run %d: polyarch %.2fs (peak RSS %d MiB)  pigz -p 2 -6 %.2fs  buildkit %.2fs\n' "$i" \
      "${polyarch[-1]}" "$((${rss[-1]} / 1024))" "${pigz[-1]}" "${buildkit[-1]}"
  done
  report "1 GiB layer build+push vs compressing its tar" polyarch pigz buildkit
  local peak; peak=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
  printf 'peak RSS of polyarch: %d MiB (limit 100 MiB)\n' "$((peak / 1024))"
}
