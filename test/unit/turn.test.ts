import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { iceServersFor, turnCredentials } from '../../src/auth/turn.js';

describe('TURN REST credentials', () => {
  test('username is expiry:identity and the password is HMAC-SHA1 of it, base64', () => {
    const { username, credential } = turnCredentials('shared-secret', 'alice', 600, 1_700_000_000_000);
    expect(username).toBe('1700000600:alice');
    // RFC-style check against an independently computed HMAC (coturn does the same).
    expect(credential).toBe(createHmac('sha1', 'shared-secret').update('1700000600:alice').digest('base64'));
    expect(Buffer.from(credential, 'base64')).toHaveLength(20);
  });

  test('an identity cannot smuggle a second colon into the username', () => {
    expect(turnCredentials('s', 'a:b:c', 60, 0).username).toBe('60:a_b_c');
  });

  test('no TURN configured means no ICE servers; configured means one entry with fresh credentials', () => {
    expect(iceServersFor(undefined, 'x')).toEqual([]);
    const [server] = iceServersFor({ urls: ['turn:127.0.0.1:3478'], secret: 's'.repeat(16), ttlSeconds: 60 }, 'bob');
    expect(server?.urls).toEqual(['turn:127.0.0.1:3478']);
    expect(server?.username).toMatch(/^\d+:bob$/);
  });
});
