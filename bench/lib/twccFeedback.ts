/**
 * Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01)
 * from a light receiver, so the SFU's bandwidth estimate for it — and with it the node's layer
 * policy — works as it does for a browser. werift has a receiver for this, but it only runs for
 * SSRCs it negotiated (ours ride one placeholder m-line), reports lost packets as received and
 * sends packets whose length is not a multiple of 32 bits; this one is small and written to the
 * draft.
 */

/** The RTP header extension that carries the transport-wide sequence number. */
export const TRANSPORT_CC_URI = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';

const TICK_US = 250;
/** 64 ms, the reference time's unit, in 250 µs ticks. */
const REFERENCE_TICKS = 256;
/** At most this many sequence numbers per feedback packet; more waits for the next. */
const MAX_STATUSES = 2000;

export class TwccFeedback {
  /** Arrival tick (250 µs) of each unreported packet, by unwrapped sequence number. */
  readonly #arrivals = new Map<number, number>();
  /** The first sequence number the next feedback reports (everything below it was reported). */
  #next: number | undefined;
  #highest = -1;
  #count = 0;

  constructor(
    private readonly senderSsrc: number,
    private readonly mediaSsrc = 0,
  ) {}

  /** A packet with transport-wide sequence number `seq` (16 bits) arrived at `arrivalMs` (a monotonic clock). */
  onPacket(seq: number, arrivalMs: number): void {
    // Unwrap against the highest seen: a packet within half the space behind it is late, not new.
    let unwrapped = seq;
    if (this.#highest >= 0) {
      const base = this.#highest - (this.#highest & 0xffff);
      unwrapped = base + seq;
      if (unwrapped - this.#highest > 0x8000) unwrapped -= 0x10000;
      else if (this.#highest - unwrapped > 0x8000) unwrapped += 0x10000;
    }
    if (this.#next !== undefined && unwrapped < this.#next) return;
    this.#highest = Math.max(this.#highest, unwrapped);
    this.#next ??= unwrapped;
    this.#arrivals.set(unwrapped, Math.round((arrivalMs * 1000) / TICK_US));
  }

  /** The RTCP packet reporting everything since the last one; undefined when nothing arrived. */
  take(): Buffer | undefined {
    if (this.#arrivals.size === 0 || this.#next === undefined) return undefined;
    const base = this.#next;
    const last = Math.min(this.#highest, base + MAX_STATUSES - 1);
    let firstTick: number | undefined;
    for (let s = base; s <= last && firstTick === undefined; s++) firstTick = this.#arrivals.get(s);
    if (firstTick === undefined) {
      this.#next = last + 1;
      return undefined;
    }
    const reference = Math.floor(firstTick / REFERENCE_TICKS);
    const statuses: number[] = [];
    const deltas: Buffer[] = [];
    let previous = reference * REFERENCE_TICKS;
    for (let s = base; s <= last; s++) {
      const tick = this.#arrivals.get(s);
      this.#arrivals.delete(s);
      if (tick === undefined) {
        statuses.push(0);
        continue;
      }
      const delta = Math.max(-32768, Math.min(32767, tick - previous));
      previous = tick;
      if (delta >= 0 && delta <= 255) {
        statuses.push(1);
        deltas.push(Buffer.from([delta]));
      } else {
        statuses.push(2);
        const b = Buffer.alloc(2);
        b.writeInt16BE(delta);
        deltas.push(b);
      }
    }
    this.#next = last + 1;
    // Run-length chunks: 0 | status (2 bits) | run length (13 bits).
    const chunks: Buffer[] = [];
    for (let i = 0; i < statuses.length; ) {
      let run = 1;
      while (i + run < statuses.length && statuses[i + run] === statuses[i] && run < 0x1fff) run++;
      const chunk = Buffer.alloc(2);
      chunk.writeUInt16BE((statuses[i]! << 13) | run);
      chunks.push(chunk);
      i += run;
    }
    const fixed = Buffer.alloc(16);
    fixed.writeUInt32BE(this.senderSsrc >>> 0, 0);
    fixed.writeUInt32BE(this.mediaSsrc >>> 0, 4);
    fixed.writeUInt16BE(base & 0xffff, 8);
    fixed.writeUInt16BE(statuses.length, 10);
    fixed.writeUIntBE(reference & 0xffffff, 12, 3);
    fixed.writeUInt8(this.#count & 0xff, 15);
    this.#count++;
    const body = Buffer.concat([fixed, ...chunks, ...deltas]);
    const padding = (4 - (body.length % 4)) % 4;
    const header = Buffer.alloc(4);
    // V=2, P when padded, FMT=15 (transport-cc); PT=205 (RTPFB); length in 32-bit words minus one.
    header.writeUInt8(0x80 | (padding > 0 ? 0x20 : 0) | 15, 0);
    header.writeUInt8(205, 1);
    header.writeUInt16BE((4 + body.length + padding) / 4 - 1, 2);
    const pad = Buffer.alloc(padding);
    if (padding > 0) pad[padding - 1] = padding;
    return Buffer.concat([header, body, pad]);
  }
}
