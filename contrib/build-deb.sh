#!/bin/sh
# build-deb.sh [OUTDIR] -- build the Debian package of this source tree.
#
# Copies the tree (what git tracks plus untracked files it does not
# ignore; without git, everything but build directories) into a temporary
# directory, puts contrib/debian there as debian/ and runs
# "dpkg-buildpackage -us -uc -b".  The .deb lands in OUTDIR (default: the
# current directory).  Needs debhelper and the build dependencies
# (contrib/install-deps.sh installs them).  Install the result with
#   apt-get install ./smime-milter_*.deb
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-.}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/smime-milter-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/smime-milter
mkdir "$src"

if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$top" ls-files --cached --others --exclude-standard |
        while IFS= read -r f; do
            [ -e "$top/$f" ] && printf '%s\n' "$f"
        done >"$work/files"
    tar -C "$top" -cf - -T "$work/files" | tar -C "$src" -xf -
else
    tar -C "$top" --exclude=./.git --exclude='./build*' --exclude=./test-logs \
        --exclude=./debian --exclude=./autom4te.cache -cf - . |
        tar -C "$src" -xf -
fi
rm -rf "$src/debian"
mkdir -p "$src/m4"   # aclocal wants it; git keeps no empty directory
cp -R "$top/contrib/debian" "$src/debian"

(cd "$src" && dpkg-buildpackage -us -uc -b)
cp "$work"/*.deb "$out"/
ls "$out"/smime-milter_*.deb
