#!/bin/sh
# Prints the path of a CPython interpreter of version X.Y (the first argument), found the way a
# developer's machine offers it: `pythonX.Y` on PATH, else pyenv (`pyenv which`, then any
# `$(pyenv root)/versions/X.Y.*`). Exits 1 with what to install when there is none.
set -u
want="${1:?usage: tools/find-python.sh X.Y}"

ok() { # the candidate runs and really is Python X.Y
    [ -n "$1" ] && [ -x "$1" ] &&
        [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]
}

for cand in "$(command -v "python$want" 2>/dev/null)" \
            "$(PYENV_VERSION="$want" pyenv which "python$want" 2>/dev/null)"; do
    if ok "$cand"; then "$cand" -c 'import sys; print(sys.executable)'; exit 0; fi  # past any shim
done
root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
for cand in $(ls -d "$root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -V -r); do
    if ok "$cand"; then echo "$cand"; exit 0; fi
done
cat >&2 <<MSG
error: no Python $want found (looked for python$want on PATH, \`pyenv which python$want\`, and
       ${root}/versions/$want.*). This tier needs it: install one, e.g.
         pyenv install $want        (then \`pyenv which python$want\` finds it), or
         apt-get install python$want python$want-venv
       or put a python$want on PATH.
MSG
exit 1
