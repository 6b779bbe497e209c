/**
 * A broadcaster in its own process, so a test can SIGKILL it and the server sees a real drop:
 * the connection vanishes without a goodbye. Prints "publishing" once the tone is on the wire.
 * Usage: tsx broadcasterProcess.ts <url> <roomId> <token> [frequency]
 */
import { ChorusClient } from '../../src/client/chorusClient.js';
import { toneTrack, webrtcHandlerFactory } from './nodePeer.js';

const [url, roomId, token, frequency] = process.argv.slice(2);
if (!url || !roomId || !token) throw new Error('usage: broadcasterProcess.ts <url> <roomId> <token> [frequency]');
const tone = toneTrack(Number(frequency ?? 440));
const client = new ChorusClient({ url, roomId, token, handlerFactory: webrtcHandlerFactory(), socket: { transports: ['websocket'] } });
client.on('error', (error) => process.stderr.write(`broadcaster error: ${error.code} ${error.message}\n`));
await client.join();
await client.publish(tone.track);
process.stdout.write('publishing\n');
