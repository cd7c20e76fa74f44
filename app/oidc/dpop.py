"""DPoP (RFC 9449): proofs of possession at `/token`, `/userinfo` and `GET /v1/me`.

A proof is a JWT (`typ: dpop+jwt`) signed with the client's key, whose public JWK is in its header.
Checked here: the header (`typ`, an asymmetric `alg` we support, a public `jwk`), the signature,
`htm` (the request's method), `htu` (the endpoint's public URL, without query and fragment), `iat`
(within `AUTHPI_DPOP_PROOF_MAX_AGE_SECONDS` either way), `jti` (each used once: a replay cache of
this process, holding every jti as long as its proof could be accepted), `ath` (the SHA-256 of the
access token, at resources) and `nonce`.

Nonces are stateless: an HMAC of the current time window under the server key, so every replica
issues and accepts the same ones (the current window and the one before). A proof carrying a
nonce must carry a valid one; with `AUTHPI_DPOP_NONCE_REQUIRED` a proof without one is answered
`use_dpop_nonce` with a fresh `DPoP-Nonce`.

A bound access token carries `cnf.jkt`, the RFC 7638 thumbprint of the proof's key, and its
`token_type` is `DPoP`; a resource then accepts it only under the `DPoP` scheme with a proof of
that very key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Request
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from app.oidc.errors import OAuthError

ALGORITHMS = ["ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA"]
MAX_PROOF_BYTES = 4096
MAX_JTI = 256
REPLAY_CAPACITY = 200_000


class _ProofRegistry(jws.JWSRegistry):
    """A proof's header carries its public key: an RSA one is larger than joserfc's default bound."""

    max_header_length = 2048


_REGISTRY = _ProofRegistry(algorithms=ALGORITHMS)


class InvalidDpopProof(OAuthError):
    """At the token endpoint (RFC 9449 §5)."""

    error = "invalid_dpop_proof"


class UseDpopNonce(OAuthError):
    error = "use_dpop_nonce"


class ProofRefused(Exception):
    def __init__(self, description: str, *, nonce: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.nonce = nonce  # set: the caller must retry with this nonce (`use_dpop_nonce`)


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str
    jti: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token_hash(token: str) -> str:
    """`ath`: base64url(SHA-256(the access token))."""
    return _b64url(hashlib.sha256(token.encode()).digest())


def normal_url(url: str) -> str:
    """A URL as `htu` compares it: scheme and host lowercased, no query, no fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


class DpopChecker:
    """One per process: the replay cache and the nonce key."""

    def __init__(self, server_key: str, *, max_age: float, nonce_required: bool,
                 nonce_lifetime: float) -> None:
        self._nonce_key = hashlib.sha256(f"dpop-nonce:{server_key}".encode()).digest()
        self.max_age = max(1.0, max_age)
        self.nonce_required = nonce_required
        self.nonce_lifetime = max(1.0, nonce_lifetime)
        self._seen: dict[str, float] = {}  # jkt:jti -> monotonic time it may be forgotten

    # -- nonces ----------------------------------------------------------------------------------
    def _nonce_for(self, window: int) -> str:
        return _b64url(hmac.new(self._nonce_key, str(window).encode(), hashlib.sha256).digest()[:18])

    def nonce(self) -> str:
        return self._nonce_for(int(time.time() // self.nonce_lifetime))

    def _nonce_ok(self, value: str) -> bool:
        window = int(time.time() // self.nonce_lifetime)
        return any(hmac.compare_digest(value, self._nonce_for(w)) for w in (window, window - 1))

    def response_headers(self, proof: Proof | None) -> dict[str, str]:
        """A fresh nonce for a client that uses DPoP, when nonces are required."""
        return {"DPoP-Nonce": self.nonce()} if proof is not None and self.nonce_required else {}

    # -- proofs ----------------------------------------------------------------------------------
    def check(self, proof: str, *, htm: str, htu: str, access_token: str | None = None) -> Proof:
        """The proof's key thumbprint, or ProofRefused."""
        if len(proof) > MAX_PROOF_BYTES or proof.count(".") != 2:
            raise ProofRefused("The DPoP proof is not a JWT")
        try:
            header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "==="))
        except ValueError as exc:
            raise ProofRefused("The DPoP proof's header is malformed") from exc
        if not isinstance(header, dict) or header.get("typ") != "dpop+jwt":
            raise ProofRefused("The DPoP proof's typ must be dpop+jwt")
        alg, jwk = header.get("alg"), header.get("jwk")
        if alg not in ALGORITHMS:
            raise ProofRefused("The DPoP proof's alg is not supported")
        if not isinstance(jwk, dict):
            raise ProofRefused("The DPoP proof carries no jwk")
        try:
            key = JWKRegistry.import_key(jwk)
            if key.is_private:
                raise ProofRefused("The DPoP proof's jwk must be a public key")
            payload = json.loads(jws.deserialize_compact(proof, key, registry=_REGISTRY).payload)
            jkt = key.thumbprint()
        except ProofRefused:
            raise
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProofRefused("The DPoP proof's signature does not verify") from exc
        if not isinstance(payload, dict):
            raise ProofRefused("The DPoP proof's claims are malformed")
        self._check_claims(payload, htm=htm, htu=htu, access_token=access_token)
        jti = payload["jti"]
        self._remember(f"{jkt}:{jti}")
        return Proof(jkt=jkt, jti=jti)

    def _check_claims(self, claims: dict[str, Any], *, htm: str, htu: str, access_token: str | None) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI:
            raise ProofRefused("The DPoP proof needs a jti")
        if claims.get("htm") != htm:
            raise ProofRefused("The DPoP proof's htm does not match the request")
        given = claims.get("htu")
        if not isinstance(given, str) or normal_url(given) != normal_url(htu):
            raise ProofRefused("The DPoP proof's htu does not match the request")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or abs(time.time() - iat) > self.max_age:
            raise ProofRefused("The DPoP proof's iat is too old or in the future")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
                raise ProofRefused("The DPoP proof's ath does not match the access token")
        nonce = claims.get("nonce")
        if nonce is not None and (not isinstance(nonce, str) or not self._nonce_ok(nonce)):
            raise ProofRefused("The DPoP proof's nonce is not valid", nonce=self.nonce())
        if nonce is None and self.nonce_required:
            raise ProofRefused("A DPoP nonce is required", nonce=self.nonce())

    def _remember(self, token: str) -> None:
        now = time.monotonic()
        seen = self._seen
        # Every entry lives as long: the oldest come first in the dict.
        while seen:
            first = next(iter(seen))
            if seen[first] > now and len(seen) < REPLAY_CAPACITY:
                break
            del seen[first]
        if token in seen:
            raise ProofRefused("The DPoP proof was already used")
        # Kept while its iat could still be accepted (iat may be up to max_age in the future).
        seen[token] = now + 2 * self.max_age


def checker(app: Any) -> DpopChecker:
    """The process's checker (made on first use from the settings)."""
    found: DpopChecker | None = getattr(app.state, "dpop", None)
    if found is None:
        settings = app.state.settings
        found = DpopChecker(app.state.secret_key, max_age=settings.dpop_proof_max_age_seconds,
                            nonce_required=settings.dpop_nonce_required,
                            nonce_lifetime=settings.dpop_nonce_lifetime_seconds)
        app.state.dpop = found
    return found


def proof_header(request: Request) -> str | None:
    """The request's one `DPoP` header (several are refused)."""
    values = request.headers.getlist("dpop")
    if len(values) > 1:
        raise ProofRefused("Send one DPoP header")
    return values[0] if values else None


# -- the token endpoint ----------------------------------------------------------------------------

def token_request_proof(request: Request, token_url: str) -> Proof | None:
    """The proof of a token request, if any (InvalidDpopProof / UseDpopNonce when refused)."""
    try:
        header = proof_header(request)
        if header is None:
            return None
        return checker(request.app).check(header, htm="POST", htu=token_url)
    except ProofRefused as exc:
        raise token_error(exc) from exc


def token_error(exc: ProofRefused) -> OAuthError:
    if exc.nonce is not None:
        return UseDpopNonce(exc.description, headers={"DPoP-Nonce": exc.nonce})
    return InvalidDpopProof(exc.description)


def require_for(client_requires: bool, proof: Proof | None) -> str | None:
    """The key thumbprint to bind tokens to; a client that requires DPoP must send a proof."""
    if client_requires and proof is None:
        raise InvalidDpopProof("This client must send a DPoP proof")
    return proof.jkt if proof is not None else None


def bind(claims: dict[str, Any], body: dict[str, Any], jkt: str | None) -> None:
    """Mark an access token's claims and its response as DPoP-bound (before signing)."""
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
        body["token_type"] = "DPoP"


# -- protected resources ---------------------------------------------------------------------------

def resource_challenge(description: str, *, error: str = "invalid_token", nonce: str | None = None
                       ) -> dict[str, str]:
    """The 401's headers at a resource: a DPoP challenge (RFC 9449 §7.1), and a nonce to use."""
    headers = {"WWW-Authenticate": f'DPoP error="{error}", error_description="{description}", '
                                   f'algs="{" ".join(ALGORITHMS)}"'}
    if nonce is not None:
        headers["DPoP-Nonce"] = nonce
    return headers


def check_resource_request(request: Request, scheme: str, token: str, claims: dict[str, Any],
                           url: str) -> Proof | None:
    """A bound token needs the DPoP scheme and a proof of its key (with `ath`); the DPoP scheme
    needs a bound token. Raises ProofRefused (`nonce` set: retry with it)."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if scheme != "dpop":
        if jkt is not None:
            raise ProofRefused("This access token is DPoP-bound: use the DPoP scheme with a proof")
        return None
    if not isinstance(jkt, str):
        raise ProofRefused("This access token is not DPoP-bound")
    header = proof_header(request)
    if header is None:
        raise ProofRefused("A DPoP proof is required")
    proof = checker(request.app).check(header, htm=request.method, htu=url, access_token=token)
    if not hmac.compare_digest(proof.jkt, jkt):
        raise ProofRefused("The DPoP proof is signed with another key than the token's")
    return proof
