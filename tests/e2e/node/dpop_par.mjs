// openid-client v6 with DPoP (RFC 9449) and PAR (RFC 9126) against a live authpi issuer:
//   node dpop_par.mjs cc    ISSUER CLIENT_ID SECRET                     -> client_credentials, userinfo, /v1/me
//   node dpop_par.mjs start ISSUER CLIENT_ID REDIRECT                   -> {url, verifier, state, nonce} (PAR)
//   node dpop_par.mjs finish ISSUER CLIENT_ID REDIRECT CALLBACK VERIFIER STATE NONCE
//                                                                        -> code, userinfo and refresh, DPoP-bound
// The client of `start`/`finish` is public (token_endpoint_auth_method none).
import * as client from 'openid-client';

const [step, issuer, clientId, ...rest] = process.argv.slice(2);
const insecure = { execute: [client.allowInsecureRequests] };

function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

async function thumbprint(publicKey) {
  const jwk = await crypto.subtle.exportKey('jwk', publicKey);
  const members = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(members));
  return Buffer.from(digest).toString('base64url');
}

if (step === 'cc') {
  const [secret] = rest;
  const config = await client.discovery(new URL(issuer), clientId, secret, undefined, insecure);
  const keyPair = await client.randomDPoPKeyPair();
  const DPoP = client.getDPoPHandle(config, keyPair);
  const tokens = await client.clientCredentialsGrant(config, { scope: 'invoices:read' }, { DPoP });
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, clientId, { DPoP });
  const me = await client.fetchProtectedResource(
    config, tokens.access_token, new URL(new URL(issuer).origin + '/v1/me'), 'GET', undefined, undefined,
    { DPoP });
  // The same token without its proof is refused.
  const bare = await fetch(new URL(issuer).origin + '/v1/me',
    { headers: { authorization: `DPoP ${tokens.access_token}` } });
  console.log(JSON.stringify({
    token_type: tokens.token_type, cnf: claimsOf(tokens.access_token).cnf,
    jkt: await thumbprint(keyPair.publicKey), userinfo, me_status: me.status, me: await me.json(),
    bare_status: bare.status,
  }));
} else if (step === 'start') {
  const [redirect] = rest;
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), insecure);
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirect, scope: 'openid profile offline_access', code_challenge: challenge,
    code_challenge_method: 'S256', state, nonce,
  });
  console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
} else if (step === 'finish') {
  const [redirect, callback, verifier, state, nonce] = rest;
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), insecure);
  const keyPair = await client.randomDPoPKeyPair();
  const DPoP = client.getDPoPHandle(config, keyPair);
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  }, { redirect_uri: redirect }, { DPoP });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  // The refresh token is bound to this key: another key's proof is refused.
  const otherDPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
  let foreign = null;
  try {
    await client.refreshTokenGrant(config, refreshed.refresh_token, undefined, { DPoP: otherDPoP });
  } catch (err) {
    foreign = err.error ?? err.code ?? String(err);
  }
  console.log(JSON.stringify({
    claims, userinfo, token_type: tokens.token_type, refreshed_type: refreshed.token_type,
    cnf: claimsOf(refreshed.access_token).cnf, jkt: await thumbprint(keyPair.publicKey), foreign,
  }));
}
