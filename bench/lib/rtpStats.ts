/**
 * Receive statistics for one RTP stream, kept the way RFC 3550 (section 6.4.1 and appendix A.1,
 * A.3, A.8) defines them, for a listener that sees raw RTP instead of a WebRTC stack's
 * `inbound-rtp` report.
 */

export interface RtpSnapshot {
  /** Packets received so far (duplicates included, as in RFC 3550). */
  received: number;
  /** Highest extended sequence number seen so far (16-bit number plus 65536 × wraps). */
  extendedMax: number;
  /** Interarrival jitter now, ms. */
  jitterMs: number;
}

export class RtpReceiveStats {
  #received = 0;
  #cycles = 0;
  #maxSeq = -1;
  /** Jitter in RTP timestamp units, as the RFC keeps it. */
  #jitter = 0;
  #lastTransit: number | undefined;

  constructor(readonly clockRate: number) {}

  /**
   * One packet: its 16-bit sequence number, 32-bit RTP timestamp, and its arrival time in ms on
   * any monotonic clock.
   */
  onPacket(sequenceNumber: number, timestamp: number, arrivalMs: number): void {
    this.#received++;
    if (this.#maxSeq < 0) this.#maxSeq = sequenceNumber;
    else {
      // Forward distance modulo 2^16: small means newer (possibly across a wrap), large means a
      // late or reordered packet, which does not move the highest sequence number.
      const delta = (sequenceNumber - this.#maxSeq + 0x10000) % 0x10000;
      if (delta > 0 && delta < 0x8000) {
        if (sequenceNumber < this.#maxSeq) this.#cycles += 0x10000;
        this.#maxSeq = sequenceNumber;
      }
    }
    // Transit time in timestamp units; only differences matter, so the clocks' offset cancels.
    const arrival = (arrivalMs / 1000) * this.clockRate;
    const transit = arrival - timestamp;
    if (this.#lastTransit !== undefined) {
      let d = transit - this.#lastTransit;
      // A timestamp wrap between two packets shows up as a jump of about 2^32.
      if (d > 0x80000000) d -= 0x100000000;
      else if (d < -0x80000000) d += 0x100000000;
      this.#jitter += (Math.abs(d) - this.#jitter) / 16;
    }
    this.#lastTransit = transit;
  }

  snapshot(): RtpSnapshot {
    return {
      received: this.#received,
      extendedMax: this.#maxSeq < 0 ? 0 : this.#cycles + this.#maxSeq,
      jitterMs: (this.#jitter / this.clockRate) * 1000,
    };
  }
}

/**
 * Packets expected, received and lost between two snapshots of the same stream (RFC 3550 A.3:
 * expected from the extended highest sequence numbers; lost can be negative with duplicates).
 */
export function windowDelta(begin: RtpSnapshot, end: RtpSnapshot): { expected: number; received: number; lost: number } {
  const expected = end.extendedMax - begin.extendedMax;
  const received = end.received - begin.received;
  return { expected, received, lost: expected - received };
}
