# shellcheck shell=bash
# openssl helpers shared by infra/local/canopy-local and infra/k8s/gen-certs (sourced).
#
# Only what no Canopy binary produces is made here:
# - CAs and the certificates they sign (the proxy client CA and its client certificates
#   for the front-proxy and for shard-to-shard calls; for Kubernetes also the CAs the
#   shards and the cache server issue their serving certificates from);
# - Canopy bearer tokens (ES256 JWTs) for users such as the admin: shards sign them with
#   <root>/pki/token-signing.key, but no binary has a flag to print one.
#
# Every function keeps existing files, so re-running a caller reuses its PKI.

pki_require_openssl() {
  if ! command -v openssl >/dev/null 2>&1; then
    echo "error: openssl is needed to create certificates and tokens; install it (Debian/Ubuntu: apt-get install openssl; Fedora: dnf install openssl; macOS: brew install openssl)" >&2
    return 1
  fi
}

# pki_ec_key FILE: a new P-256 key (PKCS#8 PEM, what the binaries read) unless FILE exists.
pki_ec_key() {
  local f=$1
  [[ -s $f ]] && return 0
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$f" 2>/dev/null)
}

# pki_public_key KEY OUT: the public key of KEY as PEM (`PUBLIC KEY`), e.g.
# token-signing.pub for --token-public-key-file.
pki_public_key() {
  [[ -s $2 ]] && return 0
  openssl pkey -in "$1" -pubout -out "$2" 2>/dev/null
}

# pki_ca DIR NAME SUBJECT: DIR/NAME.key and DIR/NAME.crt, a self-signed CA (10 years).
pki_ca() {
  local dir=$1 name=$2 subj=$3
  [[ -s $dir/$name.crt && -s $dir/$name.key ]] && return 0
  mkdir -p "$dir"
  rm -f "$dir/$name.key" "$dir/$name.crt"
  pki_ec_key "$dir/$name.key"
  openssl req -x509 -new -key "$dir/$name.key" -out "$dir/$name.crt" -days 3650 \
    -subj "$subj" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
}

# pki_leaf CA_DIR CA_NAME DIR NAME SUBJECT KIND [SAN...]: DIR/NAME.{key,crt} signed by
# CA_DIR/CA_NAME (2 years). KIND is client (extendedKeyUsage clientAuth) or server
# (serverAuth; SANs are DNS names or IP addresses).
pki_leaf() {
  local cadir=$1 ca=$2 dir=$3 name=$4 subj=$5 kind=$6
  shift 6
  [[ -s $dir/$name.crt && -s $dir/$name.key ]] && return 0
  mkdir -p "$dir"
  rm -f "$dir/$name.key" "$dir/$name.crt"
  pki_ec_key "$dir/$name.key"
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "authorityKeyIdentifier=keyid"
    if [[ $kind == server ]]; then
      echo "extendedKeyUsage=serverAuth"
      local sans=() s
      for s in "$@"; do
        if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then sans+=("IP:$s"); else sans+=("DNS:$s"); fi
      done
      local IFS=,
      echo "subjectAltName=${sans[*]}"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  local csr
  csr=$(openssl req -new -key "$dir/$name.key" -subj "$subj" 2>/dev/null)
  if ! printf '%s\n' "$csr" | openssl x509 -req -CA "$cadir/$ca.crt" -CAkey "$cadir/$ca.key" \
    -CAcreateserial -CAserial "$dir/.$name.srl" -days 730 -extfile "$ext" \
    -out "$dir/$name.crt" 2>/dev/null; then
    rm -f "$ext"
    echo "error: openssl could not sign $dir/$name.crt" >&2
    return 1
  fi
  rm -f "$ext" "$dir/.$name.srl"
}

_pki_b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# pki_token KEY USER GROUPS_JSON TTL_SECONDS: prints a Canopy bearer token (an ES256 JWT
# with Canopy's claims: iss "canopy", sub, groups, uid, iat, exp, jti; kid = base64url of
# the first 16 bytes of the SHA-256 of the public key's uncompressed point), signed with
# KEY (a shard's token-signing.key, or the cache server's).
pki_token() {
  local key=$1 user=$2 groups=$3 ttl=$4
  local now kid header payload r s
  now=$(date +%s)
  kid=$(openssl pkey -in "$key" -pubout -outform DER 2>/dev/null | tail -c 65 |
    openssl dgst -sha256 -binary | head -c 16 | _pki_b64url)
  header=$(printf '{"typ":"JWT","alg":"ES256","kid":"%s"}' "$kid" | _pki_b64url)
  payload=$(printf '{"iss":"canopy","sub":"%s","groups":%s,"uid":"%s","iat":%d,"exp":%d,"jti":"%s"}' \
    "$user" "$groups" "$(_pki_uuid)" "$now" "$((now + ttl))" "$(_pki_uuid)" | _pki_b64url)
  # openssl signs ECDSA as DER SEQUENCE { r, s }; a JWT wants r || s, 32 bytes each.
  read -r r s < <(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$key" |
    openssl asn1parse -inform DER 2>/dev/null | awk -F: '/INTEGER/ {printf "%s ", $NF} END {print ""}')
  if [[ -z $r || -z $s ]]; then
    echo "error: could not sign a token with $key" >&2
    return 1
  fi
  printf '%s.%s.%s\n' "$header" "$payload" \
    "$( (_pki_int32 "$r" && _pki_int32 "$s") | _pki_b64url)"
}

_pki_uuid() {
  local h
  h=$(openssl rand -hex 16)
  printf '%s-%s-4%s-a%s-%s' "${h:0:8}" "${h:8:4}" "${h:13:3}" "${h:17:3}" "${h:20:12}"
}

# hex on stdin -> bytes on stdout (no xxd needed).
_pki_hex_to_bytes() {
  local hex
  hex=$(cat)
  printf '%b' "$(printf '%s' "$hex" | sed 's/\(..\)/\\x\1/g')"
}

# _pki_int32 HEX: the integer as exactly 32 big-endian bytes.
_pki_int32() {
  local h=${1^^}
  while [[ ${#h} -gt 64 && ${h:0:2} == 00 ]]; do h=${h:2}; done
  while [[ ${#h} -lt 64 ]]; do h="0$h"; done
  printf '%s' "$h" | _pki_hex_to_bytes
}

# pki_kubeconfig URL CA_FILE TOKEN: a kubeconfig (as the all-in-one writes) whose current
# context is the root workspace, plus a context "base" for the server itself.
pki_kubeconfig() {
  local url=$1 ca=$2 token=$3 ca_b64
  ca_b64=$(openssl base64 -A <"$ca")
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: root
  cluster:
    certificate-authority-data: $ca_b64
    server: $url/clusters/root
- name: base
  cluster:
    certificate-authority-data: $ca_b64
    server: $url
contexts:
- name: root
  context:
    cluster: root
    user: admin
- name: base
  context:
    cluster: base
    user: admin
current-context: root
preferences: {}
users:
- name: admin
  user:
    token: $token
EOF
}
