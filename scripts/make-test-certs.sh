#!/usr/bin/env bash
# Makes a private certificate authority and one certificate per node for a TLS-protected BatchCluster
# (docs/security.md). For tests and for clusters you run yourself; keep ca.key off the nodes.
#
#   scripts/make-test-certs.sh DIR [NODE ...]      (default nodes: coordinator worker-1 worker-2)
#
# Writes DIR/ca.crt (give it to every node: --tls-ca), DIR/ca.key, and for each NODE DIR/NODE.pfx
# (that node's certificate and private key: --tls-cert), protected by the password in
# BATCHCLUSTER_TLS_PASSWORD (made up and written to DIR/password when unset). Idempotent: existing
# files are kept, so re-running adds nodes without replacing the authority.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
    echo "usage: scripts/make-test-certs.sh DIR [NODE ...]" >&2
    exit 2
fi
dir=$1
shift
nodes=("$@")
[[ ${#nodes[@]} -gt 0 ]] || nodes=(coordinator worker-1 worker-2)
command -v openssl >/dev/null || { echo "make-test-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$dir"
umask 077
if [[ -z "${BATCHCLUSTER_TLS_PASSWORD:-}" ]]; then
    [[ -f "$dir/password" ]] || openssl rand -hex 16 > "$dir/password"
    BATCHCLUSTER_TLS_PASSWORD=$(cat "$dir/password")
fi
export BATCHCLUSTER_TLS_PASSWORD

if [[ ! -f "$dir/ca.crt" ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=BatchCluster test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

for node in "${nodes[@]}"; do
    [[ "$node" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "make-test-certs.sh: a node name may hold only letters, digits, '.', '_' and '-', not '$node'" >&2; exit 2; }
    [[ -f "$dir/$node.pfx" ]] && continue
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$node" \
        -keyout "$dir/$node.key" -out "$dir/$node.csr" 2>/dev/null
    # Both uses: every node is a TLS server (it accepts connections) and a client (it opens them).
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n' "$node" > "$dir/$node.ext"
    openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 825 \
        -extfile "$dir/$node.ext" -out "$dir/$node.crt" 2>/dev/null
    openssl pkcs12 -export -inkey "$dir/$node.key" -in "$dir/$node.crt" -certfile "$dir/ca.crt" \
        -passout env:BATCHCLUSTER_TLS_PASSWORD -out "$dir/$node.pfx"
    rm -f "$dir/$node.csr" "$dir/$node.ext" "$dir/$node.key"
done
echo "certificates in $dir: ca.crt, ${nodes[*]/%/.pfx} (password: \$BATCHCLUSTER_TLS_PASSWORD${BATCHCLUSTER_TLS_PASSWORD:+, or $dir/password})"
