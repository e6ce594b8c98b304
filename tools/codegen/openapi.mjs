/**
 * OpenAPI 3.1 from endpoints.json + ath.schema.json. OpenAPI 3.1 schemas are JSON Schema 2020-12,
 * so the $defs move to components.schemas unchanged except for their $ref targets.
 */
export function generateOpenApi(schema, endpoints) {
  const rewriteRefs = (node) => {
    if (Array.isArray(node)) return node.map(rewriteRefs);
    if (node && typeof node === 'object') {
      return Object.fromEntries(
        Object.entries(node).map(([k, v]) =>
          k === '$ref' && typeof v === 'string' ? [k, v.replace('#/$defs/', '#/components/schemas/')] : [k, rewriteRefs(v)],
        ),
      );
    }
    return node;
  };
  const ref = (name) => ({ $ref: `#/components/schemas/${name}` });

  const paths = {};
  for (const [name, ep] of Object.entries(endpoints.endpoints)) {
    const params = [...ep.path.matchAll(/\{([^}]+)\}/g)].map(([, p]) => ({
      name: p,
      in: 'path',
      required: true,
      schema: { type: 'string' },
      ...(p === 'path' ? { description: 'The upstream API path (may contain "/"), forwarded byte for byte after canonical checks.' } : {}),
    }));
    const responses = {};
    responses[String(ep.response.status)] = {
      description: ep.response.schema ? ep.response.schema : ep.summary,
      ...(ep.response.schema ? { content: { [ep.response.contentType]: { schema: ref(ep.response.schema) } } } : {}),
    };
    for (const alt of ep.alternateResponses ?? []) {
      responses[String(alt.status)] = {
        description: alt.description,
        ...(alt.contentType ? { content: { [alt.contentType]: { schema: { type: 'string' } } } } : {}),
      };
    }
    const byStatus = new Map();
    for (const err of ep.errors) {
      if (!byStatus.has(err.status)) byStatus.set(err.status, []);
      byStatus.get(err.status).push(err);
    }
    for (const [status, errs] of [...byStatus].sort(([a], [b]) => a - b)) {
      responses[String(status)] = {
        description: errs.map((e) => `${e.code}: ${e.when}`).join('; '),
        content: {
          'application/json': {
            schema: ref('ATHError'),
            examples: Object.fromEntries(errs.map((e) => [e.code, { value: { code: e.code, message: e.when } }])),
          },
        },
      };
    }
    const operation = {
      operationId: name,
      summary: ep.summary,
      tags: ep.modes,
      ...(params.length ? { parameters: params } : {}),
      ...(ep.request
        ? { requestBody: { required: true, content: { [ep.request.contentType]: { schema: ref(ep.request.schema) } } } }
        : {}),
      responses,
      ...(ep.auth === 'basic' ? { security: [{ clientBasic: [] }] } : {}),
      ...(ep.auth === 'bearer' ? { security: [{ athBearer: [] }] } : {}),
      'x-ath-auth': ep.auth,
    };
    const methods = ep.method === 'ANY' ? ['get', 'post', 'put', 'patch', 'delete'] : [ep.method.toLowerCase()];
    paths[ep.path] ??= {};
    for (const m of methods) paths[ep.path][m] = { ...operation, operationId: methods.length > 1 ? `${name}_${m}` : name };
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'ATH (Agent Trust Handshake) protocol',
      version: endpoints.version,
      description: schema.description,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    tags: [
      { name: 'gateway', description: 'Served by an ATH gateway' },
      { name: 'native', description: 'Served by a service that implements ATH natively' },
    ],
    paths,
    components: {
      schemas: rewriteRefs(schema.$defs),
      securitySchemes: {
        clientBasic: { type: 'http', scheme: 'basic', description: 'client_id:client_secret from registration' },
        athBearer: { type: 'http', scheme: 'bearer', description: 'ATH access token, sent with X-ATH-Agent-ID' },
      },
    },
  };
}
