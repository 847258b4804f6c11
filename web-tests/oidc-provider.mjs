// An OpenID Connect provider for crates/cone-testkit/tests/e2e/web.rs: the `oidc-provider` package (a certified
// implementation) with its own development login and consent pages, on 127.0.0.1.
//
//   node oidc-provider.mjs     prints `READY <issuer>` once it listens
//
// Environment: OIDC_PORT (the port to listen on), OIDC_CLIENT_SECRET (Cone's client secret; the client id is
// `cone`), OIDC_REDIRECT_URI (Cone's callback). Anyone may sign in with any password: the account is the login
// typed, and its email `<login>@example.com` (verified), so `alice` is the sandbox's alice and `mallory` is nobody.

import { createServer } from 'node:http';
import Provider from 'oidc-provider';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; crates/cone-testkit/tests/e2e/web.rs sets it`);
  return value;
}

const port = Number(need('OIDC_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'cone',
      client_secret: need('OIDC_CLIENT_SECRET'),
      redirect_uris: [need('OIDC_REDIRECT_URI')],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username'] },
  // Put the granted scopes' claims in the ID token itself (as most providers do), not only behind userinfo.
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        // `NAME-unverified` has NAME's address, which the provider does not say it verified (no email_verified).
        const name = id.replace(/-unverified$/, '');
        const verified = name === id ? { email_verified: true } : {};
        return { sub: id, email: `${name}@example.com`, ...verified, preferred_username: id };
      },
    };
  },
  // Cone sends a PKCE challenge; require one, so that a client that stops sending it fails the test.
  pkce: { required: () => true },
  // Signs the provider's own cookies; a throwaway provider needs no secret key.
  cookies: { keys: ['cone-web-tests-only'] },
  features: { devInteractions: { enabled: true } },
});

createServer(provider.callback()).listen(port, '127.0.0.1', () => console.log(`READY ${issuer}`));
