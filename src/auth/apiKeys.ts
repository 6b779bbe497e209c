/**
 * API keys: id + secret pairs. A token names the key that signed it (JWT `kid`), so operators
 * rotate by adding a new key, moving their token minting to it, then removing the old one.
 *
 * Each key belongs to a tenant, its own id unless it names another (`new@prod:secret`): a room
 * belongs to the tenant whose key opened it, and only that tenant's keys may join or administer
 * it. A rotated key names the tenant of the key it replaces, so live rooms carry on.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

export interface ApiKey {
  id: string;
  secret: string;
  /** Whose rooms this key's tokens open and join; the key's own id unless it names another. */
  tenant: string;
}

export type ApiKeyInput = Omit<ApiKey, 'tenant'> & { tenant?: string | undefined };

const keyId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'API key ids are 1-64 of A-Z a-z 0-9 _ -');
const tenantId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'tenants are 1-64 of A-Z a-z 0-9 _ -');
const keySchema = z
  .object({ id: keyId, secret: z.string().min(32, 'API key secrets must be at least 32 characters'), tenant: tenantId.optional() })
  .transform((key): ApiKey => ({ id: key.id, secret: key.secret, tenant: key.tenant ?? key.id }));

export class ApiKeyring {
  readonly #keys = new Map<string, ApiKey>();

  constructor(keys: ApiKeyInput[]) {
    if (keys.length === 0) throw new Error('at least one API key is required');
    for (const key of keys) {
      const parsed = keySchema.parse(key);
      if (this.#keys.has(parsed.id)) throw new Error(`API key id ${parsed.id} is configured twice`);
      this.#keys.set(parsed.id, parsed);
    }
  }

  /** `id1:secret1,id2@tenant:secret2` — the format of CHORUS_API_KEYS. */
  static parse(list: string): ApiKeyring {
    return new ApiKeyring(
      list
        .split(',')
        .map((entry) => entry.trim())
        .filter(Boolean)
        .map((entry) => {
          const at = entry.indexOf(':');
          if (at <= 0) throw new Error('CHORUS_API_KEYS entries look like id:secret or id@tenant:secret');
          const [id, tenant, extra] = entry.slice(0, at).split('@');
          if (extra !== undefined) throw new Error('CHORUS_API_KEYS entries look like id:secret or id@tenant:secret');
          return { id: id!, secret: entry.slice(at + 1), tenant };
        }),
    );
  }

  /** Where the development key lives (absolute, so a start-up line can name it). */
  static devKeyFile(dataDir: string): string {
    return resolve(dataDir, 'api-keys.json');
  }

  /**
   * The embedded default: a development key kept in the data directory, so the node, the CLI
   * and restarts agree on it without any configuration.
   */
  static loadOrCreateDev(dataDir: string): ApiKeyring {
    const existing = ApiKeyring.loadDev(dataDir);
    if (existing) return existing;
    const file = ApiKeyring.devKeyFile(dataDir);
    mkdirSync(dataDir, { recursive: true });
    const keys = [{ id: 'dev', secret: randomBytes(32).toString('base64url') }];
    writeFileSync(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    return new ApiKeyring(keys);
  }

  /** The development key of `dataDir`, if one was made there. */
  static loadDev(dataDir: string): ApiKeyring | undefined {
    const file = ApiKeyring.devKeyFile(dataDir);
    if (!existsSync(file)) return undefined;
    return new ApiKeyring(z.array(keySchema).parse(JSON.parse(readFileSync(file, 'utf8'))));
  }

  get ids(): string[] {
    return [...this.#keys.keys()];
  }

  /** The key new tokens are signed with: the first configured. */
  get primary(): ApiKey {
    return this.#keys.values().next().value as ApiKey;
  }

  get(id: string): ApiKey | undefined {
    return this.#keys.get(id);
  }

  /** Constant-time check of a presented id + secret (HTTP Basic on the token endpoint). */
  authenticate(id: string, secret: string): ApiKey | undefined {
    const key = this.#keys.get(id);
    if (!key) return undefined;
    const a = Buffer.from(key.secret);
    const b = Buffer.from(secret);
    return a.length === b.length && timingSafeEqual(a, b) ? key : undefined;
  }
}
