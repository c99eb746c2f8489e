#!/usr/bin/env bash
# Downloads the CIFAR-10 binary version into DIR/cifar-10-batches-bin, the layout data::CIFAR10
# reads:
#   scripts/get-cifar10.sh DIR
#
# - The archive is fetched with curl into DIR/cifar-10-binary.tar.gz.part. A broken transfer is
#   resumed (curl -C -), up to KILN_CIFAR10_ATTEMPTS times in one run, and again by the next run;
#   when the server cannot resume, the download restarts from zero.
# - The MD5 is checked before anything is extracted. A mismatch deletes the download.
# - Only the expected members are extracted, into a temporary directory beside the target, which
#   is then renamed into place. A failure leaves no half-extracted tree.
#
# Environment (for tests and mirrors; the defaults are the official archive):
#   KILN_CIFAR10_URL       https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
#   KILN_CIFAR10_MD5       c32a1d4ab5d03f1284b67883e8d87530   (170,052,171 bytes)
#   KILN_CIFAR10_ATTEMPTS  3
set -euo pipefail

url=${KILN_CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}
md5=${KILN_CIFAR10_MD5:-c32a1d4ab5d03f1284b67883e8d87530}
attempts=${KILN_CIFAR10_ATTEMPTS:-3}

members=(
  cifar-10-batches-bin/data_batch_1.bin
  cifar-10-batches-bin/data_batch_2.bin
  cifar-10-batches-bin/data_batch_3.bin
  cifar-10-batches-bin/data_batch_4.bin
  cifar-10-batches-bin/data_batch_5.bin
  cifar-10-batches-bin/test_batch.bin
  cifar-10-batches-bin/batches.meta.txt
  cifar-10-batches-bin/readme.html
)

die() {
  echo "get-cifar10: error: $*" >&2
  exit 1
}

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR    (creates DIR/cifar-10-batches-bin)" >&2
  exit 2
fi
for tool in curl md5sum tar; do
  command -v "$tool" > /dev/null ||
    die "$tool is not installed (scripts/install-deps.sh installs it)"
done

dir=$1
target="$dir/cifar-10-batches-bin"
archive="$dir/cifar-10-binary.tar.gz"
partial="$archive.part"

complete() {
  local member
  for member in "${members[@]}"; do
    [[ -f "$dir/$member" ]] || return 1
  done
}

if complete; then
  echo "get-cifar10: $target is already complete"
  exit 0
fi
mkdir -p "$dir" || die "cannot create $dir"
# Staging directories left by a run that was killed outright.
rm -rf "$dir"/.cifar-10-extract.* "$dir"/.cifar-10-old.*

# ---- download, resuming a partial file ----------------------------------------------------------
progress=(--silent --show-error)
if [[ -t 2 ]]; then progress=(--progress-bar); fi

download() {
  local attempt status
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    if [[ -s "$partial" ]]; then
      echo "get-cifar10: resuming $url after $(stat -c %s "$partial") bytes (attempt $attempt)"
    else
      echo "get-cifar10: downloading $url (attempt $attempt)"
    fi
    status=0
    curl --fail --location "${progress[@]}" --connect-timeout 30 \
      --continue-at - --output "$partial" "$url" || status=$?
    case $status in
      0) return 0 ;;
      # 33: the server ignores ranges; 36: bad resume offset; 22 covers 416 Range Not
      # Satisfiable (a partial file as long as, or longer than, the archive). Start over.
      33 | 36 | 22)
        if [[ -s "$partial" ]]; then
          echo "get-cifar10: cannot resume (curl exit $status); restarting from zero" >&2
          rm -f "$partial"
        elif [[ $status -eq 22 ]]; then
          rm -f "$partial"
          die "the server refused $url (curl exit 22: HTTP error)"
        fi
        ;;
      *) echo "get-cifar10: transfer failed (curl exit $status)" >&2 ;;
    esac
  done
  if [[ ! -s "$partial" ]]; then
    rm -f "$partial"
    die "could not download $url after $attempts attempts"
  fi
  die "could not download $url after $attempts attempts; run again to resume ($partial is kept)"
}

checksum_of() { md5sum "$1" | cut -d' ' -f1; }

if [[ -f "$archive" && "$(checksum_of "$archive")" == "$md5" ]]; then
  echo "get-cifar10: using the verified archive $archive"
else
  rm -f "$archive"
  resumed=false
  if [[ -s "$partial" ]]; then resumed=true; fi
  download
  actual=$(checksum_of "$partial")
  if [[ "$actual" != "$md5" && $resumed == true ]]; then
    # The kept partial file may belong to another archive: one clean restart.
    echo "get-cifar10: the resumed download does not match MD5 $md5; restarting from zero" >&2
    rm -f "$partial"
    download
    actual=$(checksum_of "$partial")
  fi
  if [[ "$actual" != "$md5" ]]; then
    rm -f "$partial"
    die "checksum mismatch for $url: expected MD5 $md5, got $actual; the download was deleted"
  fi
  mv -f "$partial" "$archive"
fi

# ---- extract the expected members beside the target, then rename into place --------------------
staging=$(mktemp -d "$dir/.cifar-10-extract.XXXXXX") ||
  die "cannot create a temporary directory in $dir"
old=""
cleanup() {
  rm -rf "$staging"
  if [[ -n "$old" ]]; then rm -rf "$old"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tar -xzf "$archive" -C "$staging" --no-same-owner --no-same-permissions -- "${members[@]}" ||
  die "$archive could not be extracted (or lacks an expected member); delete it and run again"
for member in "${members[@]}"; do
  [[ -f "$staging/$member" && ! -L "$staging/$member" ]] ||
    die "$member in $archive is not a regular file"
done
for member in "${members[@]}"; do
  case $member in
    *.bin)
      size=$(stat -c %s "$staging/$member")
      ((size > 0 && size % 3073 == 0)) ||
        die "$member is $size bytes, not a whole number of 3073-byte records"
      ;;
  esac
done

if [[ -e "$target" ]]; then
  # An incomplete tree from elsewhere: swap it out, so the target is never half there.
  old=$(mktemp -d "$dir/.cifar-10-old.XXXXXX")
  mv "$target" "$old/"
fi
mv "$staging/cifar-10-batches-bin" "$target" || die "cannot move the extracted files to $target"
rm -f "$archive"
echo "get-cifar10: CIFAR-10 is in $target"
