#!/usr/bin/env node
/**
 * The `chorus` command for operators, offline (no running node needed):
 *   chorus token --room R --role listener [--kind broadcast|call|watch] [--identity I] [--name N]
 *                [--ttl SECONDS] [--key ID] [--reusable] [--moderate] [--replace]
 *                [--publish audio,video|microphone,camera,screen,screen-audio] [--create-dev-key]
 *   chorus key [--id ID]      prints a new `id:secret` for CHORUS_API_KEYS
 * Keys come from CHORUS_API_KEYS / CHORUS_TOKEN_SECRET, else the development key in
 * CHORUS_DATA_DIR (the one a node on embedded defaults uses), read the way the node reads them.
 * A token signed with a key the node does not have is refused at join, so `token` says on stderr
 * which key signed and where it came from, and makes no development key unless asked to.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiKeyring } from '../auth/apiKeys.js';
import { TokenService, type Grants, type PublishGrant } from '../auth/tokens.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { createLogger } from '../observability/logger.js';
import { AuditLog } from '../observability/audit.js';
import { ChorusError } from '../protocol/errors.js';
import { roles, roomKinds, type Role, type RoomKind } from '../protocol/messages.js';

const usage = `usage:
  chorus token --room ROOM --role ${roles.join('|')} [--kind ${roomKinds.join('|')}] [--identity ID]
               [--name NAME] [--ttl SECONDS] [--key KEY_ID] [--reusable] [--moderate] [--replace]
               [--publish audio,video,microphone,camera,screen,screen-audio] [--create-dev-key]
  chorus key [--id KEY_ID]`;

function fail(message: string, code = 2): never {
  process.stderr.write(`chorus: ${message}\n`);
  process.exit(code);
}

async function token(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      room: { type: 'string' },
      role: { type: 'string' },
      kind: { type: 'string' },
      identity: { type: 'string' },
      name: { type: 'string' },
      ttl: { type: 'string' },
      key: { type: 'string' },
      publish: { type: 'string' },
      reusable: { type: 'boolean' },
      moderate: { type: 'boolean' },
      replace: { type: 'boolean' },
      'create-dev-key': { type: 'boolean' },
    },
  });
  if (!values.room || !values.role) fail(`--room and --role are required\n${usage}`);
  if (!(roles as readonly string[]).includes(values.role)) fail(`--role must be one of ${roles.join(', ')}`);
  if (values.kind !== undefined && !(roomKinds as readonly string[]).includes(values.kind)) fail(`--kind must be one of ${roomKinds.join(', ')}`);
  const kind = (values.kind ?? 'broadcast') as RoomKind;
  const config = loadConfig();
  const { keys, source } = signingKeys(config.tokens.keys, config.dataDir, values['create-dev-key'] === true);
  const tokens = new TokenService(keys, config.tokens.ttlSeconds, config.tokens.maxTtlSeconds);
  const grants: Grants = {};
  if (values.publish) grants.publish = values.publish.split(',').map((k) => k.trim()) as PublishGrant[];
  if (values.reusable) grants.reusable = true;
  if (values.moderate) grants.moderate = true;
  if (values.replace) grants.replace = true;
  const ttlSeconds = values.ttl === undefined ? undefined : Number(values.ttl);
  const identity = values.identity ?? `${values.role}-${randomBytes(4).toString('hex')}`;
  const minted = await tokens.issue(
    { room: values.room, identity, role: values.role as Role, name: values.name, grants, kind },
    { ttlSeconds, keyId: values.key },
  );
  new AuditLog(createLogger('silent', 'cli')).record({
    type: 'token.minted',
    keyId: minted.keyId,
    room: values.room,
    identity,
    role: values.role,
    tokenId: minted.tokenId,
    via: 'cli',
  });
  process.stderr.write(`chorus: signed with API key "${minted.keyId}" from ${source}\n`);
  process.stdout.write(`${minted.token}\n`);
}

/** The keys a node with this environment signs with, and where they come from (for stderr). */
function signingKeys(configured: ApiKeyring | undefined, dataDir: string, create: boolean): { keys: ApiKeyring; source: string } {
  if (configured) return { keys: configured, source: process.env['CHORUS_API_KEYS'] ? 'CHORUS_API_KEYS' : 'CHORUS_TOKEN_SECRET' };
  const file = ApiKeyring.devKeyFile(dataDir);
  if (existsSync(file)) return { keys: ApiKeyring.loadDev(dataDir)!, source: `the development key file ${file}` };
  if (!create) {
    fail(
      `no API key to sign with: CHORUS_API_KEYS and CHORUS_TOKEN_SECRET are unset and there is no development key at ${file}.\n` +
        `  Give the CLI the node's CHORUS_API_KEYS, or the node's CHORUS_DATA_DIR if it runs on its development key\n` +
        `  (default .data, relative to the directory the node was started in; the node makes the key on its first start).\n` +
        `  --create-dev-key makes a development key at ${file} for a node that will use that data directory.`,
    );
  }
  const keys = ApiKeyring.loadOrCreateDev(dataDir);
  process.stderr.write(`chorus: created a new development key at ${file}; only a node started with CHORUS_DATA_DIR=${resolve(dataDir)} and no CHORUS_API_KEYS accepts its tokens\n`);
  return { keys, source: `the development key file ${file}` };
}

function key(argv: string[]): void {
  const { values } = parseArgs({ args: argv, strict: true, options: { id: { type: 'string' } } });
  const id = values.id ?? `key-${randomBytes(3).toString('hex')}`;
  process.stdout.write(`${id}:${randomBytes(32).toString('base64url')}\n`);
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'token') await token(rest);
  else if (command === 'key') key(rest);
  else fail(usage);
} catch (error) {
  if (error instanceof ChorusError || error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    fail((error as Error).message);
  }
  throw error;
}
