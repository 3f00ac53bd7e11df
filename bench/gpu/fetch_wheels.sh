#!/usr/bin/env bash
# Run HERE, before a session's device call: fetches bench/gpu/requirements.txt as CPython wheels for
# the lent GPU machine (x86-64, Python 3.12: ../.library/device/KINDS.md) into .whl/ (git-ignored),
# which the device tool carries (`carry: [".whl"]`) and bench/gpu/run.sh installs there.
#     bash bench/gpu/fetch_wheels.sh            # PYV=3.11 fetches for this machine's Python instead (a local dry run)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYV=${PYV:-3.12}
DEST=${DEST:-.whl}
rm -rf "$DEST" && mkdir -p "$DEST"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp "${platforms[@]}" \
    -d "$DEST" -r bench/gpu/requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
wanted=$(grep -cv '^\s*\(#\|$\)' bench/gpu/requirements.txt)
got=$(ls "$DEST"/*.whl | wc -l)
[ "$got" -eq "$wanted" ] || { echo "fetched $got wheels for $wanted requirements" >&2; exit 1; }
echo "$got wheels, $(du -sh "$DEST" | cut -f1) in $DEST (the device tool carries 64 MiB with the working tree)"
