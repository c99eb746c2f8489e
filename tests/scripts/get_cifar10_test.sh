#!/usr/bin/env bash
# Tests scripts/get-cifar10.sh against an HTTP server on 127.0.0.1 that serves generated archives
# in the official layout (a few records per file, so it runs in seconds):
#   tests/scripts/get_cifar10_test.sh path/to/get-cifar10.sh
#
# The server (python3's http.server with range requests added) serves each file three ways:
#   /ranged/NAME  honours "Range: bytes=N-" (206, or 416 past the end)
#   /plain/NAME   ignores Range and sends the whole file, as `python3 -m http.server` does
#   /cut/NAME     like ranged, but while NAME.cut exists it sends half the body and hangs up,
#                 once (it deletes the marker), to simulate a broken transfer
set -euo pipefail

script=$(realpath "${1:?usage: $0 path/to/get-cifar10.sh}")
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-get-cifar10-test.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # so a timeout still stops the server

failures=0
pass() { echo "ok - $*"; }
fail() {
  echo "FAILED - $*" >&2
  failures=$((failures + 1))
}
check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# ---- fixtures: archives in the official layout --------------------------------------------------
mkdir -p "$work/www" "$work/expected"
python3 - "$work" << 'EOF'
import io, os, sys, tarfile

work = sys.argv[1]
RECORD = 3073

def records(n, first_label):
    out = bytearray()
    for r in range(n):
        out.append((first_label + r) % 10)
        out += bytes((i * 37 + first_label * 100 + r) % 256 for i in range(3072))
    return bytes(out)

members = {f"data_batch_{f}.bin": records(3, 2 * f) for f in range(1, 6)}
members["test_batch.bin"] = records(3, 7)
classes = "airplane automobile bird cat deer dog frog horse ship truck".split()
members["batches.meta.txt"] = ("\n".join(classes) + "\n\n").encode()
members["readme.html"] = b"<html>CIFAR-10 test archive</html>\n"
for name, data in members.items():
    with open(os.path.join(work, "expected", name), "wb") as f:
        f.write(data)

def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))

def archive(path, files, extras=()):
    with tarfile.open(path, "w:gz") as tar:
        dir_info = tarfile.TarInfo("cifar-10-batches-bin")
        dir_info.type = tarfile.DIRTYPE
        dir_info.mode = 0o755
        tar.addfile(dir_info)
        for name, data in files.items():
            add(tar, "cifar-10-batches-bin/" + name, data)
        for name, data in extras:
            add(tar, name, data)

www = os.path.join(work, "www")
# The good archive also holds members the script must not extract.
archive(os.path.join(www, "cifar.tar.gz"), members,
        extras=[("cifar-10-batches-bin/unexpected.txt", b"x"), ("../escape.txt", b"x"),
                ("other/file.txt", b"x")])
missing = dict(members)
del missing["test_batch.bin"]
archive(os.path.join(www, "missing-member.tar.gz"), missing)
short = dict(members)
short["data_batch_2.bin"] = members["data_batch_2.bin"][:-5]
archive(os.path.join(www, "short-member.tar.gz"), short)
EOF
md5_of() { md5sum "$1" | cut -d' ' -f1; }
good_md5=$(md5_of "$work/www/cifar.tar.gz")
size=$(stat -c %s "$work/www/cifar.tar.gz")

# ---- the server -------------------------------------------------------------------------------
cat > "$work/server.py" << 'EOF'
import http.server, os, sys

root, port_file, log_file = sys.argv[1:4]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        mode, _, name = self.path.lstrip("/").partition("/")
        ranged = self.headers.get("Range")
        with open(log_file, "a") as log:
            log.write(f"{mode} {name} {ranged or '-'}\n")
        path = os.path.join(root, name)
        if mode not in ("ranged", "plain", "cut") or "/" in name or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        if ranged and mode != "plain":
            start = int(ranged.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut" and os.path.exists(path + ".cut"):
            os.remove(path + ".cut")
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
EOF
python3 "$work/server.py" "$work/www" "$work/port" "$work/requests.log" &
server_pid=$!
for _ in $(seq 100); do
  [[ -s "$work/port" ]] && break
  sleep 0.05
done
[[ -s "$work/port" ]] || { echo "FAILED - the test server did not start" >&2; exit 1; }
base="http://127.0.0.1:$(cat "$work/port")"

# ---- helpers ----------------------------------------------------------------------------------
run() {  # run DIR URL MD5 [ATTEMPTS]: runs the script, output in $work/out, status in $status
  status=0
  KILN_CIFAR10_URL=$2 KILN_CIFAR10_MD5=$3 KILN_CIFAR10_ATTEMPTS=${4:-3} \
    bash "$script" "$1" > "$work/out" 2>&1 || status=$?
}
output_has() { grep -qF -- "$1" "$work/out"; }
tree_matches() {  # exactly the expected members, byte for byte, and nothing else in DIR
  local dir=$1
  [[ "$(ls -A "$dir")" == "cifar-10-batches-bin" ]] || return 1
  diff -r "$work/expected" "$dir/cifar-10-batches-bin" > /dev/null
}
left_nothing() {  # no tree, no staging directory, no partial download
  local dir=$1
  [[ -z "$(ls -A "$dir" 2> /dev/null)" ]]
}
requests_with_range() { grep -c " bytes=" "$work/requests.log" || true; }

# ---- 1. a clean download ----------------------------------------------------------------------
run "$work/t1" "$base/ranged/cifar.tar.gz" "$good_md5"
check "a clean download succeeds" test "$status" -eq 0
check "only the expected members are extracted, intact" tree_matches "$work/t1"
check "nothing escapes the target directory" test ! -e "$work/escape.txt"
: > "$work/requests.log"
run "$work/t1" "$base/ranged/cifar.tar.gz" "$good_md5"
check "a second run sees the complete tree and downloads nothing" \
  test "$status" -eq 0 -a ! -s "$work/requests.log"

# ---- 2. a corrupted archive: the MD5 does not match -------------------------------------------
run "$work/t2" "$base/ranged/cifar.tar.gz" "0123456789abcdef0123456789abcdef"
check "a wrong MD5 is refused" test "$status" -ne 0
check "the MD5 error is clear" output_has "checksum mismatch"
check "a refused archive leaves no tree and no partial file" left_nothing "$work/t2"

# ---- 3. a broken transfer, resumed in the same run ----------------------------------------------
: > "$work/requests.log"
touch "$work/www/cifar.tar.gz.cut"
run "$work/t3" "$base/cut/cifar.tar.gz" "$good_md5"
check "a broken transfer is resumed in the same run" test "$status" -eq 0
check "the resumed download is intact" tree_matches "$work/t3"
check "the second request asked for the rest only" test "$(requests_with_range)" -eq 1

# ---- 4. a broken transfer, resumed by the next run ----------------------------------------------
: > "$work/requests.log"
touch "$work/www/cifar.tar.gz.cut"
run "$work/t4" "$base/cut/cifar.tar.gz" "$good_md5" 1
check "a run whose transfer breaks fails" test "$status" -ne 0
check "its message says how to resume" output_has "run again to resume"
check "it keeps the partial file and builds no tree" \
  test -s "$work/t4/cifar-10-binary.tar.gz.part" -a ! -e "$work/t4/cifar-10-batches-bin"
half=$(stat -c %s "$work/t4/cifar-10-binary.tar.gz.part")
check "the partial file holds the first half" test "$half" -eq $((size / 2))
run "$work/t4" "$base/cut/cifar.tar.gz" "$good_md5"
check "the next run resumes and succeeds" test "$status" -eq 0
check "it asked for the bytes after the partial file" grep -qF "bytes=$half-" "$work/requests.log"
check "the resumed tree is intact" tree_matches "$work/t4"

# ---- 5. a server that cannot resume: restart from zero -------------------------------------------
mkdir -p "$work/t5"
head -c 1000 "$work/www/cifar.tar.gz" > "$work/t5/cifar-10-binary.tar.gz.part"
run "$work/t5" "$base/plain/cifar.tar.gz" "$good_md5"
check "without range support the download restarts and succeeds" test "$status" -eq 0
check "the restarted tree is intact" tree_matches "$work/t5"

# ---- 6. a stale partial file from another archive: one clean restart -----------------------------
mkdir -p "$work/t6"
head -c 1000 /dev/urandom > "$work/t6/cifar-10-binary.tar.gz.part"
run "$work/t6" "$base/ranged/cifar.tar.gz" "$good_md5"
check "a stale partial file is replaced by a fresh download" test "$status" -eq 0
check "the fresh tree is intact" tree_matches "$work/t6"

# ---- 7. archives that verify but are not CIFAR-10: nothing half-extracted ------------------------
run "$work/t7" "$base/ranged/missing-member.tar.gz" "$(md5_of "$work/www/missing-member.tar.gz")"
check "an archive without test_batch.bin is refused" test "$status" -ne 0
check "the refusal names the problem" \
  output_has "could not be extracted (or lacks an expected member)"
check "it leaves no tree or staging directory" \
  test -z "$(find "$work/t7" -mindepth 1 -not -name cifar-10-binary.tar.gz)"
run "$work/t8" "$base/ranged/short-member.tar.gz" "$(md5_of "$work/www/short-member.tar.gz")"
check "a member that is not whole records is refused" output_has "data_batch_2.bin is 9214 bytes"
check "it leaves no tree or staging directory" \
  test -z "$(find "$work/t8" -mindepth 1 -not -name cifar-10-binary.tar.gz)"

# ---- 8. leftovers from before: an incomplete tree, a staging directory -----------------------------------------------
mkdir -p "$work/t9/cifar-10-batches-bin"
echo stale > "$work/t9/cifar-10-batches-bin/data_batch_1.bin"
run "$work/t9" "$base/ranged/cifar.tar.gz" "$good_md5"
check "an incomplete tree is replaced by a complete one" tree_matches "$work/t9"
mkdir -p "$work/t11/.cifar-10-extract.abcdef/cifar-10-batches-bin"
touch "$work/t11/.cifar-10-extract.abcdef/cifar-10-batches-bin/data_batch_1.bin"
run "$work/t11" "$base/ranged/cifar.tar.gz" "$good_md5"
check "staging left by a killed run is cleaned up" tree_matches "$work/t11"

# ---- 9. HTTP errors ---------------------------------------------------------------------------
run "$work/t10" "$base/ranged/absent.tar.gz" "$good_md5"
check "a missing archive (404) fails clearly" test "$status" -ne 0
check "the 404 message names the URL" output_has "$base/ranged/absent.tar.gz"
check "a 404 leaves nothing behind" left_nothing "$work/t10"

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all get-cifar10 checks passed"
