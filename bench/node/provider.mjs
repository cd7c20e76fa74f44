// panva/oidc-provider with one client_credentials client, for bench/token.py.
//   node provider.mjs PORT jwt|opaque
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, format] = process.argv.slice(2);
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' };
const resource = 'https://api.bench.example';

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'bench', client_secret: 'bench-secret', grant_types: ['client_credentials'],
    redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  scopes: ['invoices:read'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'invoices:read',
        accessTokenFormat: format === 'jwt' ? 'jwt' : 'opaque',
        accessTokenTTL: 3600,
        ...(format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
      }),
    },
  },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
