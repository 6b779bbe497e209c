/**
 * The application's own server: it serves its page and mints each visitor a Chorus token with its
 * API key (no request to Chorus for that). Who may broadcast or join which room is this
 * application's decision; this example lets every visitor choose.
 *
 *   CHORUS_URL=http://localhost:3000 CHORUS_KEY_ID=app CHORUS_KEY_SECRET=<40+ chars> PORT=8080 npm start
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { mintToken, type RoomGrant } from '@chorus-rtc/server-sdk';

const chorusUrl = process.env['CHORUS_URL'] ?? 'http://localhost:3000';
const key = { id: process.env['CHORUS_KEY_ID'] ?? 'app', secret: process.env['CHORUS_KEY_SECRET'] ?? '' };
const port = Number(process.env['PORT'] ?? 8080);
const here = new URL('.', import.meta.url);

/** What each way of taking part is, in Chorus terms. */
const seats: Record<string, Pick<RoomGrant, 'role' | 'kind'>> = {
  broadcast: { role: 'broadcaster', kind: 'broadcast' },
  listen: { role: 'listener', kind: 'broadcast' },
  call: { role: 'participant', kind: 'call' },
};

async function body(request: import('node:http').IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of request) {
    text += String(chunk);
    if (text.length > 10_000) throw new Error('body too large');
  }
  return JSON.parse(text || '{}') as unknown;
}

const server = createServer((request, response) => {
  const send = (status: number, type: string, content: string | Buffer): void => {
    response.writeHead(status, { 'content-type': type });
    response.end(content);
  };
  const route = async (): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    if (request.method === 'GET' && path === '/') return send(200, 'text/html', await readFile(new URL('../index.html', here)));
    if (request.method === 'GET' && path === '/page.js') return send(200, 'text/javascript', await readFile(new URL('page.js', here)));
    if (request.method === 'GET' && path === '/config') return send(200, 'application/json', JSON.stringify({ chorusUrl }));
    if (request.method === 'POST' && path === '/token') {
      const { room, as, name } = (await body(request)) as { room?: string; as?: string; name?: string };
      const seat = seats[as ?? ''];
      if (!seat || !room) return send(400, 'application/json', JSON.stringify({ error: 'room and as (broadcast, listen, call) are needed' }));
      const identity = `${as}-${Math.random().toString(36).slice(2, 10)}`;
      const { token } = await mintToken(key, { room, identity, ...seat, ...(name ? { name } : {}) });
      return send(200, 'application/json', JSON.stringify({ token, identity }));
    }
    send(404, 'text/plain', 'not found');
  };
  route().catch((error: unknown) => send(500, 'application/json', JSON.stringify({ error: String(error) })));
});

server.listen(port, '127.0.0.1', () => console.log(`example on http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`));
