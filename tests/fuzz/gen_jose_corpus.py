#!/usr/bin/env python3
"""gen_jose_corpus.py - writes the seed corpora of fuzz_jwt and fuzz_jwks.

Signs the seed tokens with the test keys in jose_keys.h (so they verify there) using the
Python 'cryptography' package. Usage: tests/fuzz/gen_jose_corpus.py (from anywhere).
"""

import base64
import json
import os
import re

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = open(os.path.join(HERE, "jose_keys.h")).read()


def load(name):
    """The private key whose PEM lines follow '#define name' in jose_keys.h."""
    lines = []
    for line in SRC[SRC.index("#define " + name + " "):].splitlines():
        lines += re.findall(r'"([^"]*)\\n"', line)
        if not line.rstrip().endswith("\\"):
            break
    body = "".join(l for l in lines if not l.startswith("-----"))
    return serialization.load_der_private_key(base64.b64decode(body), None)


KEYS = {
    "rsa": load("FZ_PEM_RSA"),
    "ec256": load("FZ_PEM_EC256"),
    "ec384": load("FZ_PEM_EC384"),
    "ed": load("FZ_PEM_ED25519"),
}
ALG_KEY = {"RS": "rsa", "PS": "rsa", "ES256": "ec256", "ES384": "ec384", "EdDSA": "ed"}
HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(alg, data, key=None):
    if key is None:
        key = KEYS[ALG_KEY.get(alg, ALG_KEY.get(alg[:2]))]
    if alg == "EdDSA":
        return key.sign(data)
    h = HASH[alg[2:]]()
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), h)
    if alg.startswith("PS"):
        return key.sign(data, padding.PSS(padding.MGF1(h), h.digest_size), h)
    half = 32 if alg == "ES256" else 48
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


def token(hdr, claims, alg=None, key=None):
    h = hdr if isinstance(hdr, str) else json.dumps(hdr, separators=(",", ":"))
    c = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    inp = b64(h.encode()) + "." + b64(c.encode())
    return inp + "." + b64(sign(alg or json.loads(h)["alg"], inp.encode(), key))


def jwk(kid, key, **extra):
    pub = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        n = pub.public_numbers()
        d = {"kty": "RSA", "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
             "e": b64(n.e.to_bytes(3, "big"))}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        n = pub.public_numbers()
        half = 32 if key.curve.name == "secp256r1" else 48
        d = {"kty": "EC", "crv": "P-256" if half == 32 else "P-384",
             "x": b64(n.x.to_bytes(half, "big")), "y": b64(n.y.to_bytes(half, "big"))}
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        d = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    d["kid"] = kid
    d.update(extra)
    return d


def write(corpus, items):
    d = os.path.join(HERE, corpus)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.remove(os.path.join(d, old))
    for i, item in enumerate(items):
        with open(os.path.join(d, "seed-%02d" % (i + 1)), "wb") as f:
            f.write(item if isinstance(item, bytes) else item.encode())


GOOD = {"iss": "https://issuer.example", "aud": "mcp-api", "sub": "alice", "exp": 1700000600,
        "iat": 1699999990}
ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]

jwt = []
for alg in ALGS:
    kid = ALG_KEY.get(alg, ALG_KEY.get(alg[:2]))
    jwt.append(token({"alg": alg, "typ": "JWT", "kid": kid}, GOOD))
    jwt.append(token({"alg": alg}, dict(GOOD, aud=["x", "mcp-api"], nbf=1699999000)))
jwt += [
    token({"alg": "EdDSA", "kid": "ed", "crit": ["exp"]}, GOOD),
    token({"alg": "RS256", "kid": "nope"}, GOOD),
    token({"alg": "EdDSA", "kid": "ed"}, dict(GOOD, exp=1699999000)),
    b64(b'{"alg":"none"}') + "." + b64(json.dumps(GOOD).encode()) + ".",
    b64(b'{"alg":"HS256","kid":"rsa"}') + "." + b64(json.dumps(GOOD).encode()) + ".c2ln",
    "a.b.c.d",
    "..",
]
claims = [
    json.dumps(GOOD),
    json.dumps(dict(GOOD, aud=["a", "mcp-api"], nbf=1700000000)),
    '{"iss":"https://issuer.example","aud":"mcp-api","exp":1e300,"iat":-1e300}',
    '{"iss":"https://issuer.example","aud":"mcp-api","exp":1700000060}',
    '{"iss":"https://issuer.example","aud":"mcp-api","exp":1,"exp":1700000600}',
    '{"iss":"https://issuer.example","aud":["mcp-api",1],"exp":9223372036854775807,"nbf":1700000060}',
    '{"iss":"https://issuer.example","aud":"other","exp":1700000600}',
    '{"iss":"https://issuer.example/","aud":"mcp-api","exp":1700000600}',
    '{"iss":"https://issuer.example","aud":"mcp-api"}',
    '{"iss":"https://issuer.example","aud":"mcp-api","exp":1700000600,"nbf":1700000061}',
    '{"iss":"https://issuer.example","aud":"mcp-api","exp":1699999940}',
    '{"iss":"https://issuer.example","aud":"mcp-api","exp":"1700000600"}',
]
headers = [
    '{"alg":"EdDSA","kid":"ed"}',
    '{"alg":"EdDSA"}',
    '{"alg":"EdDSA","kid":"unknown"}',
    '{"alg":"EdDSA","kid":"rsa"}',
    '{"alg":"EdDSA","crit":[]}',
    '{"alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"AA"},"jku":"https://e/","x5c":[]}',
]
write("fuzz_jwt-corpus", jwt + [b"\x01" + c.encode() for c in claims] +
      [b"\x02" + h.encode() for h in headers])

other = ec.generate_private_key(ec.SECP256R1())
jwks = [
    {"keys": [jwk("rsa", KEYS["rsa"], use="sig"), jwk("ec256", KEYS["ec256"], alg="ES256"),
              jwk("ec384", KEYS["ec384"]), jwk("ed", KEYS["ed"], alg="EdDSA", use="sig")]},
    {"keys": [jwk("ed", KEYS["ed"])]},
    {"keys": [jwk("ed", KEYS["ed"], use="enc"), jwk("e2", other)]},
    {"keys": [jwk("rsa", KEYS["rsa"], alg="RS256")]},
    {"keys": [{"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]},
    {"keys": []},
]
write("fuzz_jwks-corpus", [json.dumps(j) for j in jwks] + ['{"keys":[{"kty":"RSA","n":"AQAB"'])
