// openid-client v6 driving the machine-facing features of an authpi issuer. One JSON line per result.
//   node machine.mjs register ISSUER REDIRECT [INITIAL_ACCESS_TOKEN]   -> the registered metadata
//   node machine.mjs device   ISSUER CLIENT_ID SCOPE                   -> {device} line, then {tokens, claims}
//   node machine.mjs exchange ISSUER AGENT_ID AGENT_SECRET SUBJECT_TOKEN [SCOPE] -> {response, claims} or {error}
import * as client from 'openid-client';

const insecure = { execute: [client.allowInsecureRequests] };
const [step, issuer, ...rest] = process.argv.slice(2);
const payload = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
const print = (value) => console.log(JSON.stringify(value));

if (step === 'register') {
  const [redirect, initialAccessToken] = rest;
  try {
    const config = await client.dynamicClientRegistration(new URL(issuer), {
      redirect_uris: [redirect], token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      client_name: 'openid-client e2e', scope: 'openid profile',
    }, undefined, { ...insecure, ...(initialAccessToken ? { initialAccessToken } : {}) });
    print({ metadata: config.clientMetadata(), server: config.serverMetadata() });
  } catch (err) {
    print({ error: err.error ?? err.code ?? String(err), status: err.status ?? err.cause?.status });
  }
} else if (step === 'device') {
  const [clientId, scope] = rest;
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), insecure);
  const device = await client.initiateDeviceAuthorization(config, { scope });
  print({ device });
  try {
    const tokens = await client.pollDeviceAuthorizationGrant(config, device);
    print({ tokens, claims: payload(tokens.access_token), id_claims: tokens.claims() });
  } catch (err) {
    print({ error: err.error ?? err.code ?? String(err) });
  }
} else if (step === 'exchange') {
  const [agentId, agentSecret, subjectToken, scope] = rest;
  const config = await client.discovery(new URL(issuer), agentId, agentSecret, undefined, insecure);
  try {
    const response = await client.genericGrantRequest(config, 'urn:ietf:params:oauth:grant-type:token-exchange', {
      subject_token: subjectToken, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      ...(scope ? { scope } : {}),
    });
    print({ response, claims: payload(response.access_token) });
  } catch (err) {
    print({ error: err.error ?? err.code ?? String(err) });
  }
} else {
  throw new Error(`unknown step ${step}`);
}
