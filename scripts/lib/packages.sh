# shellcheck shell=bash
# ensure_packages CALLER PKG...: make sure Debian packages are installed.
# As root: apt-get install -y --no-install-recommends what is missing, refreshing the package
# lists first only when they are missing or older than a day (and once more if the install
# fails on lists it did not refresh). Not root: print what is missing and return 1.
ensure_packages() {
    local caller=$1 p updated=0
    shift
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "$caller: missing system packages: ${missing[*]}" >&2
        echo "$caller: run it as root to install them, or: apt-get install -y --no-install-recommends ${missing[*]}" >&2
        return 1
    fi
    echo "$caller: installing ${missing[*]}" >&2
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null | head -1) ]]; then
        "${apt[@]}" update && updated=1
    fi
    if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; then
        [[ $updated -eq 1 ]] || { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; } || true
    fi
    local still=()
    for p in "${missing[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || still+=("$p")
    done
    if [[ ${#still[@]} -gt 0 ]]; then
        echo "$caller: could not install: ${still[*]}" >&2
        return 1
    fi
}
