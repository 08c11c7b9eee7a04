#!/usr/bin/env node
// A real OpenID Connect provider (npm `oidc-provider`) for the e2e suite, on 127.0.0.1.
//
//   PORT=N IDP_KEYS=/path/keys.json [IDP_TOKEN_TTL=60] node apps/oidc-idp.mjs
//
// Issuer http://127.0.0.1:<port>; discovery at /.well-known/openid-configuration, keys at /jwks.
// IDP_KEYS: a JSON file {"keys":[<private JWKs>]} (the test generates and rotates them; restart
// the provider with a new file to rotate). Clients:
//   agent / agent-secret      client_credentials (client_secret_basic or _post)
//   webapp / webapp-secret    authorization_code, redirect URIs $IDP_REDIRECT_URI (comma-separated)
// Access tokens are JWTs (RFC 9068) for any requested resource (RFC 8707), audience
// $IDP_AUDIENCE (default "mcp-server"), scope "mcp", lifetime IDP_TOKEN_TTL seconds.
// Interactions (login + consent) are auto-completed for user "alice" so a browser-less client can
// run the authorization-code flow by following redirects.
// Prints "[idp] token request grant=<type>" per POST /token (tests count them).
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? process.env.APP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const keys = JSON.parse(fs.readFileSync(process.env.IDP_KEYS, 'utf8'));
const ttl = Number(process.env.IDP_TOKEN_TTL ?? 60);
const audience = process.env.IDP_AUDIENCE ?? 'mcp-server';

const provider = new Provider(issuer, {
  jwks: keys,
  clients: [
    { client_id: 'agent', client_secret: 'agent-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic' },
    { client_id: 'agent-post', client_secret: 'agent-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_post' },
    { client_id: 'webapp', client_secret: 'webapp-secret', grant_types: ['authorization_code'], redirect_uris: (process.env.IDP_REDIRECT_URI ?? 'http://127.0.0.1/callback').split(','), response_types: ['code'] },
  ],
  scopes: ['openid', 'mcp'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:mcp-server',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'mcp', audience, accessTokenFormat: 'jwt', accessTokenTTL: ttl, jwt: { sign: { alg: 'RS256' } } }),
    },
  },
  loadExistingGrant: async (ctx) => {
    // Auto-consent for the browser-less authorization-code test.
    // "mcp" is both an OIDC scope (listed in `scopes`) and the resource's scope: grant both.
    const grant = new provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid mcp');
    grant.addResourceScope('urn:mcp-server', 'mcp');
    await grant.save();
    return grant;
  },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  pkce: { required: () => false },
});
provider.proxy = false;

// Auto-login: any interaction finishes as user alice.
provider.use(async (ctx, next) => {
  if (ctx.path === '/token' && ctx.method === 'POST') {
    await next();
    console.log(`[idp] token request status=${ctx.status}`);
    return;
  }
  const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (m) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const result = { login: { accountId: 'alice' } };
    if (details.prompt.name === 'consent') {
      const grant = new provider.Grant({ accountId: 'alice', clientId: details.params.client_id });
      grant.addOIDCScope('openid mcp');
      grant.addResourceScope('urn:mcp-server', 'mcp');
      result.consent = { grantId: await grant.save() };
    }
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(redirectTo);
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => console.log(`[idp] listening ${issuer}`));
