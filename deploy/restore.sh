#!/bin/sh
# restore.sh restores a node's configuration directory from an archive
# that backup.sh wrote, into DIR, which must not exist or be empty, and
# checks every file against the archive's SHA256SUMS.
#
#	deploy/restore.sh ARCHIVE DIR           # e.g. restore.sh weir-edge-1.tar.gz /etc/weir
#
# Modes come back as they were backed up (the key and tokens 0600). Check
# the result with `weir check --config DIR/weir.yaml`, then start the node.
set -eu
[ $# -eq 2 ] || { echo "usage: restore.sh ARCHIVE DIR" >&2; exit 2; }
archive=$1 dir=$2
[ -r "$archive" ] || { echo "restore.sh: cannot read $archive" >&2; exit 1; }
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
	echo "restore.sh: $dir is not empty: restore into a new or empty directory, then move it into place" >&2
	exit 1
fi
umask 077
mkdir -p "$dir"
tar -xzf "$archive" -C "$dir" --no-same-owner
[ -f "$dir/SHA256SUMS" ] || { echo "restore.sh: $archive has no SHA256SUMS: not an archive of backup.sh" >&2; exit 1; }
if ! (cd "$dir" && sha256sum --quiet -c SHA256SUMS); then
	echo "restore.sh: files restored into $dir do not match the archive's sums: the archive is damaged; use another backup" >&2
	exit 1
fi
rm "$dir/SHA256SUMS"
echo "restore.sh: $dir restored from $archive"
