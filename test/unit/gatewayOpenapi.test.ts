import { Validator } from '@seriousme/openapi-schema-validator';
import Fastify from 'fastify';
import { expect, test } from 'vitest';
import { gatewayDocument } from '../../src/gateway/openapi.js';
import { registerGatewayRoutes, type GatewayDeps } from '../../src/gateway/routes.js';

test('the OpenAPI document is valid OpenAPI 3.1', async () => {
  const result = await new Validator().validate(gatewayDocument() as never);
  expect(result.errors ?? []).toEqual([]);
  expect(result.valid).toBe(true);
});

test('the document describes every route the gateway registers, and no other', async () => {
  const app = Fastify();
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push(`${method.toLowerCase()} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
  });
  // Registration only: no request is made, so the parts behind the routes are not needed.
  await registerGatewayRoutes(app, {} as GatewayDeps);
  await app.ready();
  const document = gatewayDocument();
  const described = Object.entries(document.paths ?? {}).flatMap(([path, item]) => Object.keys(item ?? {}).map((method) => `${method} ${path}`));
  expect(routes.filter((r) => r !== 'get /api/openapi.json').sort()).toEqual(described.sort());
  // Every operation says how it is refused, with the typed error body.
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    for (const operation of Object.values(item ?? {}) as Array<{ responses: Record<string, unknown> }>) {
      expect(Object.keys(operation.responses), path).toEqual(expect.arrayContaining(['307', '400', '401', '403', '404', '413', '429']));
    }
  }
  await app.close();
});
