#!/usr/bin/env bash
# Builds the repository's Dockerfile with podman and proves the image works: health, live chat, a
# base64 batch to its results, graceful stop, and a restart that keeps the batch (/data volume).
#
# Needs root on Debian 12 (bookworm); no Docker engine and no image registry. The FROM image
# (python:3.11-slim) is stood in for by a Debian base made with debootstrap from the apt mirror this
# machine already uses, tagged locally under that name.
#
#   bash tests/container/run.sh
#
# Environment:
#   SCAIGRID_CONTAINER_CACHE  where the base image tarball is kept between runs
#                             (default /var/tmp/scaigrid-emulator-container-cache)
#   SCAIGRID_CONTAINER_TMP    where the throwaway podman storage goes (default /dev/shm when it
#                             is a tmpfs with 4 GB free, else $TMPDIR or /tmp)
#   APT_MIRROR                Debian mirror for debootstrap (default: read from apt's sources)
#   KEEP_WORKDIR=1            keep the work directory (logs, answers, podman storage) to inspect
#
# Prints one line per check and, on success, ends with `container: N passed, 0 failed`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${SCAIGRID_CONTAINER_CACHE:-/var/tmp/scaigrid-emulator-container-cache}
suite=bookworm
base_packages=python3,python3-venv,ca-certificates
ca_bundle=/etc/ssl/certs/ca-certificates.crt
image=localhost/scaigrid-emulator:container-test
base_image=localhost/scaigrid-emulator-base:$suite
key=sgk_containertest0123456789abcdef0123
passed=0
current="setup"
reported=""
podman_ready=""

say() { printf '%s\n' "$*"; }
now() { date +%s.%N; }
since() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' "$1" "$(now)"; }

[ "$(id -u)" -eq 0 ] || { say "run.sh: needs root (podman storage, debootstrap)"; exit 2; }

# --- tools --------------------------------------------------------------------------------------
need=()
for tool in podman buildah runc slirp4netns debootstrap curl python3; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing: podman buildah runc slirp4netns debootstrap curl python3"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        podman buildah runc slirp4netns debootstrap curl python3 >/dev/null
fi

# --- private podman configuration and storage -----------------------------------------------------
# Scratch space for this run's podman storage. It is thrown away, so a large enough tmpfs is the
# best place (builds and cleanup are several times faster than on a disk mounted with `discard`).
if [ -n "${SCAIGRID_CONTAINER_TMP:-}" ]; then
    scratch=$SCAIGRID_CONTAINER_TMP
elif [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] \
    && [ "$(df -Pk /dev/shm | awk 'NR == 2 {print $4}')" -gt $((4 * 1024 * 1024)) ]; then
    scratch=/dev/shm
else
    scratch=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$scratch/scaigrid-container.XXXXXX")
container=scaigrid-emulator-ct-$$
# Podman and runc keep a few things outside the configured storage (blob cache, network lock and
# IPAM, network namespaces, runc state); remove the ones this run creates.
host_paths=(/var/lib/containers /run/containers /etc/containers/networks /run/netns /run/runc)
new_host_paths=()
for path in "${host_paths[@]}"; do [ -e "$path" ] || new_host_paths+=("$path"); done
cleanup() {
    local rc=$?
    set +e
    if [ "$rc" -ne 0 ] && [ -z "$reported" ]; then
        say "FAILED: $current (exit status $rc)"
        say "container: $passed passed, 1 failed"
    fi
    if [ -n "$podman_ready" ]; then
        # Stops this run's container (conmon, slirp4netns); its storage is private to this run.
        podman rm -af -v >/dev/null 2>&1
        # conmon starts `podman container cleanup` when a container exits; let it finish (bounded)
        # so it does not mount the storage again after the unmount below.
        local until=$((SECONDS + 15))
        while pgrep -f -- "$work/" >/dev/null && [ "$SECONDS" -lt "$until" ]; do sleep 0.1; done
    fi
    # Overlay storage leaves its own mounts under the work directory; undo them before deleting.
    findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r mnt; do umount "$mnt"; done
    if [ "${KEEP_WORKDIR:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
    for path in "${new_host_paths[@]}"; do
        case $path in
            /run/netns | /run/runc) # shared system directories: only if left empty
                [ -d "$path" ] && [ -z "$(ls -A "$path")" ] || continue
                if mountpoint -q "$path"; then umount "$path"; fi
                rmdir "$path" ;;
            *) rm -rf "$path" ;;
        esac
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/containers.conf" <<EOF
[containers]
# the machine's hard nofile limit is below podman's default, and runc needs both set
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
# crun cannot run containers under this cgroup setup; runc can
runtime = "runc"
# keep podman's state and locks inside the work directory too
tmp_dir = "$work/libpod"
lock_type = "file"
[network]
network_config_dir = "$work/networks"
EOF
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
podman_ready=1

fail() {
    reported=1
    say "FAILED: $current${1:+: $1}"
    if podman container exists "$container" 2>/dev/null; then
        say "--- last container log lines ---"
        podman logs --tail 30 "$container" 2>&1 || true
    fi
    say "container: $passed passed, 1 failed"
    exit 1
}
pass() { passed=$((passed + 1)); say "ok $passed - $current"; }

# Assert on a JSON document on stdin: `expect 'python expression over d' 'message'`.
expect() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
if not eval("(" + sys.argv[1] + ")", {"d": d}):
    print(json.dumps(d)[:600]); sys.exit(1)
' "$1" || fail "${2:-expected $1}"
}
# Print one value from a JSON document on stdin: `field 'd["data"]["id"]'`.
field() { python3 -c 'import json, sys; print(eval(sys.argv[1], {"d": json.load(sys.stdin)}))' "$1"; }

# --- base image: debootstrap once, then from the cache ------------------------------------------
apt_mirror() {
    # The first Debian archive apt is configured with that carries the suite (one-line .list files
    # and deb822 .sources files); never a security archive.
    python3 - "$suite" <<'EOF'
import glob, sys
suite = sys.argv[1]
found = []
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words.pop(0)
        if len(words) >= 2:
            found.append((words[0], [words[1]]))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            found += [(uri, fields.get("suites", [])) for uri in fields.get("uris", [])]
for uri, suites in found:
    if suite in suites and "security" not in uri:
        print(uri.rstrip("/"))
        break
else:
    sys.exit(f"no apt source for {suite} in /etc/apt/sources.list(.d); set APT_MIRROR")
EOF
}

current="base image"
t_start=$(now)
base_tar=$cache/debian-$suite-${base_packages//,/-}.tar
if [ -s "$base_tar" ]; then
    base_how="cached"
else
    base_how="debootstrap"
    mirror=${APT_MIRROR:-$(apt_mirror)} || fail "no apt mirror found"
    say "debootstrap $suite from $mirror (cached in $cache for the next run)"
    mkdir -p "$cache"
    rootfs=$work/rootfs
    debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar --numeric-owner -C "$rootfs" -cf "$base_tar.partial.$$" .
    mv "$base_tar.partial.$$" "$base_tar"
    rm -rf "$rootfs"
fi
podman import -q "$base_tar" "$base_image" >/dev/null || fail "podman import"
# Let the Dockerfile's unmodified FROM resolve to the local base (never pulled: --pull=never).
podman tag "$base_image" python:3.11-slim
t_base=$(since "$t_start")

# --- build --------------------------------------------------------------------------------------
current="image builds"
t_build_start=$(now)
# The host CA bundle is mounted for pip during RUN steps only; it never lands in a layer.
podman build --pull=never --network=host --format docker \
    -v "$ca_bundle:$ca_bundle:ro" -t "$image" "$repo" >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log"; fail; }
t_build=$(since "$t_build_start")
pass

current="image config: non-root user, /data volume, port 8080, healthcheck"
podman image inspect "$image" >"$work/image.json" || fail
expect '
    (c := d[0]["Config"])["User"] == "10001:10001"
    and "/data" in c["Volumes"] and "8080/tcp" in c["ExposedPorts"]
    and "/_emulator/health" in " ".join(d[0]["Healthcheck"]["Test"])
    and c["Cmd"] == ["scaigrid-emulator", "serve"]
    and "SCAIGRID_EMULATOR_DB=/data/scaigrid-emulator.db" in c["Env"]' <"$work/image.json"
pass

# --- run ----------------------------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port

# Poll health with short, bounded retries; give up early if the container has exited.
wait_healthy() {
    local deadline=$((SECONDS + 60))
    until curl -fsS --max-time 2 "$url/_emulator/health" >"$work/health.json" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || fail "no healthy answer within 60 s"
        [ "$(podman inspect -f '{{.State.Running}}' "$container")" = true ] || fail "container exited"
        sleep 0.1
    done
}

current="container starts and answers health in the envelope"
t_run_start=$(now)
# slirp4netns forwards the port in user space: no bridge, no firewall rules left on the host.
# (podman logs that it cannot reach systemd to schedule the HEALTHCHECK; it is run by hand below.)
podman run -d --name "$container" --network slirp4netns -p "127.0.0.1:$port:8080" "$image" \
    >/dev/null 2>"$work/podman-run.log" || { cat "$work/podman-run.log"; fail "podman run"; }
wait_healthy
t_first200=$(since "$t_run_start")
t_cold=$(since "$t_start")
expect 'd == {"status": "ok", "data": {"status": "healthy", "version": d["data"]["version"]}}' \
    <"$work/health.json"
pass

current="the emulator process runs as a non-root user"
[ "$(podman exec "$container" id -u)" = 10001 ] || fail "id -u is not 10001"
pass

current="the image's HEALTHCHECK passes"
podman healthcheck run "$container" >/dev/null 2>&1 || fail "podman healthcheck run"
pass

current="the host's own CA certificates are not baked into the image"
podman exec "$container" cat "$ca_bundle" >"$work/image-ca.crt" || fail "no CA bundle in the image"
python3 - "$work/image-ca.crt" /usr/local/share/ca-certificates/*.crt <<'EOF' || fail
import sys
bundle = "".join(open(sys.argv[1]).read().split())
for path in sys.argv[2:]:
    try:
        pem = "".join(open(path).read().split())
    except OSError:  # the glob matched nothing
        continue
    body = pem.split("-----BEGINCERTIFICATE-----")[-1].split("-----ENDCERTIFICATE-----")[0]
    if body and body in bundle:
        sys.exit(f"{path} is in the image's {sys.argv[1]}")
EOF
pass

api() { # api METHOD PATH [JSON BODY]
    curl -sS --max-time 10 -X "$1" "$url$2" -H "Authorization: Bearer $key" \
        -H "Content-Type: application/json" ${3:+-d "$3"}
}

current="native chat answers in the envelope"
api POST /v1/inference/chat \
    '{"model": "scailabs/poolnoodle-omni", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 50}' \
    >"$work/chat.json" || fail "POST /v1/inference/chat"
expect 'd["status"] == "ok" and d["data"]["object"] == "chat.completion"
    and d["data"]["choices"][0]["message"]["content"] and d["data"]["usage"]["total_tokens"] > 0' \
    <"$work/chat.json"
pass

current="the bundled scenarios ship inside the package"
scenario_names=$(find "$repo/scenarios" -maxdepth 1 -name '*.yaml' -printf '%f\n' | sed 's/\.yaml$//' | sort | paste -sd,)
curl -fsS --max-time 10 "$url/_emulator/scenarios" >"$work/scenarios.json" || fail "GET /_emulator/scenarios"
expect '",".join(sorted(s["name"] for s in d["data"]["bundled"])) == "'"$scenario_names"'"' \
    <"$work/scenarios.json"
pass

current="the dashboard's files ship inside the package"
curl -fsS --max-time 10 "$url/_emulator/ui" >"$work/ui.html" || fail "GET /_emulator/ui"
grep -q '<script src="/_emulator/ui/app.js"' "$work/ui.html" || fail "no script tag in the page"
for asset in app.js app.css; do
    curl -fsS --max-time 10 -o /dev/null "$url/_emulator/ui/$asset" || fail "GET /_emulator/ui/$asset"
done
pass

current="a 3-line batch submitted as base64 is accepted"
input=$(cat <<'EOF'
{"custom_id": "req-1", "method": "POST", "url": "/v1/inference/chat", "body": {"model": "scailabs/poolnoodle-omni", "messages": [{"role": "user", "content": "Summarize: one"}], "max_tokens": 100}}
{"custom_id": "req-2", "method": "POST", "url": "/v1/inference/chat", "body": {"model": "scailabs/poolnoodle-omni", "messages": [{"role": "user", "content": "Summarize: two"}], "max_tokens": 100}}
{"custom_id": "req-3", "method": "POST", "url": "/v1/inference/embed", "body": {"model": "openai/text-embedding-3-small", "input": ["First text", "Second text"]}}
EOF
)
api POST /v1/inference/batch "{\"input_file_base64\": \"$(printf '%s\n' "$input" | base64 -w0)\"}" \
    >"$work/submit.json" || fail "POST /v1/inference/batch"
expect 'd["status"] == "ok" and d["data"]["total_count"] == 3' <"$work/submit.json"
batch=$(field 'd["data"]["id"]' <"$work/submit.json")
pass

# Wait (bounded) for a final status; happy-path batches finish at once.
wait_final() {
    local deadline=$((SECONDS + 30)) status
    while [ "$SECONDS" -lt "$deadline" ]; do
        api GET "/v1/inference/batch/$batch" >"$work/batch.json" || fail "GET batch"
        status=$(field 'd["data"]["status"]' <"$work/batch.json")
        case $status in
            completed | failed | cancelled) return 0 ;;
        esac
        sleep 0.1
    done
    fail "batch $batch not final within 30 s"
}

check_results() {
    local results_url
    results_url=$(field 'd["data"]["results_url"]' <"$work/batch.json")
    curl -fsS --max-time 10 "$results_url" >"$work/results.jsonl" || fail "download $results_url"
    [ "$(wc -l <"$work/results.jsonl")" -eq 3 ] || fail "$(wc -l <"$work/results.jsonl") result lines"
    python3 -c '
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert sorted(r["custom_id"] for r in rows) == ["req-1", "req-2", "req-3"], rows
assert all(r["status"] == "ok" for r in rows), rows
' "$work/results.jsonl" || fail "result lines"
}

current="the batch completes"
wait_final
expect 'd["data"]["status"] == "completed" and d["data"]["completed_count"] == 3
    and d["data"]["failed_count"] == 0 and d["data"]["results_url"]' <"$work/batch.json"
pass

current="its results download has 3 lines, one per custom_id"
check_results
pass

current="podman stop shuts down gracefully (exit code 0)"
t_stop=$(now)
podman stop --time 10 "$container" >/dev/null 2>"$work/podman-stop.log" \
    || { cat "$work/podman-stop.log"; fail "podman stop"; }
stop_seconds=$(since "$t_stop")
[ "$(podman inspect -f '{{.State.ExitCode}}' "$container")" = 0 ] \
    || fail "exit code $(podman inspect -f '{{.State.ExitCode}}' "$container")"
podman logs "$container" >"$work/container.log" 2>&1 || fail "podman logs"
grep -q "Application shutdown complete" "$work/container.log" || fail "no shutdown log line"
pass

current="a restart of the same container keeps the batch (/data volume)"
podman start "$container" >/dev/null 2>"$work/podman-start.log" \
    || { cat "$work/podman-start.log"; fail "podman start"; }
wait_healthy
wait_final
expect 'd["data"]["id"] == "'"$batch"'" and d["data"]["status"] == "completed"' <"$work/batch.json"
check_results
pass

size_mb=$(podman image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f", $1 / 1e6}')
base_mb=$(podman image inspect -f '{{.Size}}' "$base_image" | awk '{printf "%.0f", $1 / 1e6}')
say "timing: base ${t_base}s ($base_how), build ${t_build}s, run to first 200 ${t_first200}s" \
    "(start to first 200 ${t_cold}s), stop ${stop_seconds}s, all checks $(since "$t_start")s"
say "image: ${size_mb} MB (base ${base_mb} MB + $((size_mb - base_mb)) MB added by the Dockerfile)"
say "container: $passed passed, 0 failed"
