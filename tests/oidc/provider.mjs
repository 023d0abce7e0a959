// A real OpenID Connect provider for the integration tests: panva's `oidc-provider` (the certified
// Node.js implementation, pinned in package-lock.json), not a mock, so that authorization-code +
// PKCE, device flow, refresh-token rotation and reuse detection, resource indicators (RFC 8707),
// revocation, cookies and HTML interactions behave exactly as a real IdP's do.
// tests/util/oidc.rs starts one per test (`node tests/oidc/provider.mjs`, stdin piped).
//
// Install once:  npm ci --prefix tests/oidc
//
// Configuration (environment):
//   OIDC_CLIENT_ID          the one registered client (native, public, PKCE)      default gdcloud-test
//   OIDC_AUDIENCES          resource indicators (space/comma separated) for which
//                           RS256 JWT access tokens are issued                    default https://registry.test
//   OIDC_ACCESS_TOKEN_TTL   access token lifetime in seconds                      default 300
//   OIDC_USE_GRANTED_RESOURCE  1/0: a refresh without `resource` yields a token
//                           for the single resource granted at login (1), or an
//                           opaque userinfo token (0)                             default 1
//   OIDC_TLS_CERT, OIDC_TLS_KEY  PEM files: serve HTTPS (issuer https://...)      default plain HTTP
//
// Protocol with the test: listens on 127.0.0.1, port 0; prints ONE line of JSON on stdout when
// ready, {"issuer": "...", "port": N}; logs everything else to stderr; exits when stdin closes.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

import Provider, { errors } from 'oidc-provider';

// stdout carries only the ready line: oidc-provider prints its notices with console.info.
console.info = console.error;
console.log = console.error;
const log = (...args) => console.error('[oidc]', ...args);
const env = process.env;

const clientId = env.OIDC_CLIENT_ID || 'gdcloud-test';
const audiences = new Set((env.OIDC_AUDIENCES ?? 'https://registry.test').split(/[\s,]+/).filter(Boolean));
const accessTokenTTL = Number.parseInt(env.OIDC_ACCESS_TOKEN_TTL || '300', 10);
const useGrantedResource = (env.OIDC_USE_GRANTED_RESOURCE ?? '1') !== '0';
const tls = env.OIDC_TLS_CERT && env.OIDC_TLS_KEY
  ? { cert: fs.readFileSync(env.OIDC_TLS_CERT), key: fs.readFileSync(env.OIDC_TLS_KEY) }
  : undefined;
if (!Number.isSafeInteger(accessTokenTTL) || accessTokenTTL <= 0) {
  throw new Error(`OIDC_ACCESS_TOKEN_TTL must be a positive integer, got ${env.OIDC_ACCESS_TOKEN_TTL}`);
}

// A fresh RS256 signing key per run: ID tokens and JWT access tokens are signed with it, and it is
// published at /jwks.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };

function configuration() {
  return {
    clients: [{
      client_id: clientId,
      application_type: 'native', // loopback redirect URIs match on any port
      token_endpoint_auth_method: 'none', // public client
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'email'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    // Put the scope's claims (email) in the ID token too, as most IdPs do.
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.test`, email_verified: true };
        },
      };
    },
    pkce: { required: () => true },
    async issueRefreshToken(_ctx, client, source) {
      return client.grantTypeAllowed('refresh_token') && source.scopes.has('offline_access');
    },
    rotateRefreshToken: true, // and reusing a rotated one revokes the whole grant
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || accessTokenTTL,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      DeviceCode: 600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: true }, // HTML login (any login, any password) and consent pages
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => useGrantedResource,
        getResourceServerInfo(_ctx, resource) {
          if (!audiences.has(resource)) {
            throw new errors.InvalidTarget(`unknown resource ${resource}`);
          }
          return {
            scope: '',
            audience: resource,
            accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  };
}

// Listen first (port 0), then build the provider with the real issuer.
let handler = (_req, res) => { res.statusCode = 503; res.end('starting'); };
const server = tls
  ? https.createServer(tls, (req, res) => handler(req, res))
  : http.createServer((req, res) => handler(req, res));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration());
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
    'revocation.error', 'device_authorization.error', 'code_verification.error', 'device_resume.error']) {
    provider.on(event, (_ctx, err) => log(event, err?.name, err?.message, err?.error_description ?? '', err?.error_detail ?? ''));
  }
  provider.on('grant.success', (ctx) => log('grant.success', ctx.oidc.params?.grant_type));
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
  log(`listening: ${issuer} client_id=${clientId} audiences=${[...audiences].join(',')} access_token_ttl=${accessTokenTTL}`);
});

// The test owns us through our stdin: when it closes (the fixture is dropped or the test process
// dies), we exit.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
