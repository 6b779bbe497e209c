import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { iceServersFor, turnCredentials, turnUserTag } from '../../src/auth/turn.js';

describe('TURN REST credentials', () => {
  test('username is expiry:identity and the password is HMAC-SHA1 of it, base64', () => {
    const { username, credential } = turnCredentials('shared-secret', 'alice', 600, 1_700_000_000_000);
    expect(username).toBe(`1700000600:${turnUserTag('alice')}`);
    // Checked against an independently computed HMAC (coturn does the same).
    expect(credential).toBe(createHmac('sha1', 'shared-secret').update(username).digest('base64'));
    expect(Buffer.from(credential, 'base64')).toHaveLength(20);
  });

  test('any identity becomes a username coturn accepts: one colon, only hex after it', () => {
    for (const identity of ['a:b:c', 'Imam Ali', "O'Brien", 'back\\slash', 'union select', 'ü']) {
      expect(turnCredentials('s', identity, 60, 0).username).toMatch(/^60:[0-9a-f]{24}$/);
    }
    expect(turnUserTag('a')).not.toBe(turnUserTag('b'));
  });

  test('no TURN configured means no ICE servers; configured means one entry with fresh credentials', () => {
    expect(iceServersFor(undefined, 'x')).toEqual([]);
    const [server] = iceServersFor({ urls: ['turn:127.0.0.1:3478'], secret: 's'.repeat(16), ttlSeconds: 60 }, 'bob');
    expect(server?.urls).toEqual(['turn:127.0.0.1:3478']);
    expect(server?.username).toMatch(new RegExp(`^\\d+:${turnUserTag('bob')}$`));
  });
});
