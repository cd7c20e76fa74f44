// openid-client v6 as a relying party. Two steps, so the Python test drives the hosted login:
//   node rp.mjs start  ISSUER CLIENT_ID SECRET REDIRECT            -> {url, verifier, state, nonce}
//   node rp.mjs finish ISSUER CLIENT_ID SECRET REDIRECT CALLBACK VERIFIER STATE NONCE -> {claims, userinfo}
import * as client from 'openid-client';

const [step, issuer, clientId, secret, redirect, ...rest] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, secret, undefined, {
  execute: [client.allowInsecureRequests],
});

if (step === 'start') {
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirect, scope: 'openid profile email', code_challenge: challenge,
    code_challenge_method: 'S256', state, nonce,
  });
  console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
} else {
  const [callback, verifier, state, nonce] = rest;
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  console.log(JSON.stringify({ claims, userinfo }));
}
