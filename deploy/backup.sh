#!/bin/sh
# backup.sh archives a node's configuration directory: weir.yaml, the
# cluster key file, the API tokens file, certificates and keys, whatever
# else is in it. The cache is not backed up: it is refilled from the
# origins (docs/operations.md, "Backup and restore").
#
#	deploy/backup.sh [-d DIR] ARCHIVE       # DIR: /etc/weir by default
#
# ARCHIVE is a gzipped tar, written with mode 0600 since it holds the
# cluster key and the token hashes, with a SHA256SUMS member that
# restore.sh checks. Keep it where the secrets may live (encrypted at
# rest), and back up again after every key rotation or token change.
set -eu
dir=/etc/weir
while getopts d: opt; do
	case $opt in
	d) dir=$OPTARG ;;
	*) echo "usage: backup.sh [-d DIR] ARCHIVE" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: backup.sh [-d DIR] ARCHIVE" >&2; exit 2; }
archive=$1
[ -d "$dir" ] || { echo "backup.sh: $dir is not a directory: give the configuration directory with -d" >&2; exit 1; }
[ -f "$dir/weir.yaml" ] || echo "backup.sh: warning: $dir has no weir.yaml" >&2
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Copy first, so the sums and the archive describe the same files even
# if one changes meanwhile.
cp -Rp "$dir/." "$tmp/files"
(cd "$tmp/files" && find . -type f ! -name SHA256SUMS -exec sha256sum {} + | sort -k2 >SHA256SUMS)
tar -czf "$archive.tmp" -C "$tmp/files" .
mv "$archive.tmp" "$archive"
echo "backup.sh: $(($(wc -l <"$tmp/files/SHA256SUMS"))) files of $dir in $archive"
