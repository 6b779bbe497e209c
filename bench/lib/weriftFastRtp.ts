/**
 * werift parses every RTP header twice per packet (once to decrypt SRTP, once to route it) with
 * RtpHeader.deSerialize, which reads each bit field through a string round trip (`getBit`:
 * toString(2), split, join, parseInt). In a load-generator process that receives thousands of
 * packets a second this is ~10 % of its CPU (CPU profile of 100 listeners), i.e. the load
 * generator's own cost, taken from the server on a shared machine.
 *
 * This replaces it with the same parse done with bit masks, for the headers these listeners get
 * (no CSRCs, no header extensions: they ask for none); anything else still goes to werift's own
 * parser. The result is the same object (test/unit/weriftFastRtp.test.ts checks it against
 * werift's parser).
 */
import { RtpHeader } from 'werift';

const FIXED_HEADER_BYTES = 12;

let installed = false;

export function fastRtpHeaderParse(original: (raw: Buffer) => RtpHeader): (raw: Buffer) => RtpHeader {
  return (raw) => {
    const b0 = raw[0]!;
    // CSRCs or a header extension: werift's own, complete parser.
    if (raw.length < FIXED_HEADER_BYTES || (b0 & 0x1f) !== 0) return original(raw);
    const h = new RtpHeader();
    const b1 = raw[1]!;
    h.version = b0 >> 6;
    h.padding = (b0 & 0x20) !== 0;
    h.extension = false;
    h.csrcLength = 0;
    h.csrc = [];
    h.marker = (b1 & 0x80) !== 0;
    h.payloadType = b1 & 0x7f;
    h.sequenceNumber = raw.readUInt16BE(2);
    h.timestamp = raw.readUInt32BE(4);
    h.ssrc = raw.readUInt32BE(8);
    h.payloadOffset = FIXED_HEADER_BYTES;
    if (h.padding) h.paddingSize = raw[raw.length - 1]!;
    return h;
  };
}

/** Installs the fast parse process-wide (werift calls RtpHeader.deSerialize through the class). */
export function installFastRtpHeaderParse(): void {
  if (installed) return;
  installed = true;
  const original = RtpHeader.deSerialize.bind(RtpHeader);
  RtpHeader.deSerialize = fastRtpHeaderParse(original);
}
