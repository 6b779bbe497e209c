/**
 * Whether media arrives on a received track, read from its peer connection's stats report
 * (matched by the track's id: `receiver.getStats()` is missing on some WebRTC stacks, the
 * connection's report is not). Used to switch a call's media path only once the new path
 * carries it.
 */
export interface Arrival {
  /** Packets received on the track so far. */
  packets: number;
  /** Milliseconds from its last packet to the report, when the stack says. */
  sinceLastMs: number | undefined;
  /** Video: frames decoded so far, when the stack says (packets alone may be a keyframe's first half). */
  framesDecoded: number | undefined;
}

interface InboundStats {
  type: string;
  timestamp: number;
  trackIdentifier?: string;
  packetsReceived?: number;
  lastPacketReceivedTimestamp?: number;
  kind?: string;
  framesDecoded?: number;
}

export function arrival(report: RTCStatsReport | undefined, trackId: string): Arrival | undefined {
  if (!report) return undefined;
  for (const entry of report.values() as Iterable<InboundStats>) {
    if (entry.type !== 'inbound-rtp' || entry.trackIdentifier !== trackId) continue;
    const last = entry.lastPacketReceivedTimestamp;
    // Both times come from the same report, so their clocks agree whatever the stack's epoch.
    return {
      packets: entry.packetsReceived ?? 0,
      sinceLastMs: typeof last === 'number' && last > 0 ? Math.max(0, Math.round(entry.timestamp - last)) : undefined,
      framesDecoded: entry.kind === 'video' && typeof entry.framesDecoded === 'number' ? entry.framesDecoded : undefined,
    };
  }
  return undefined;
}

/**
 * Whether the track has media to show: a decoded frame for video (an element switched to a track
 * whose keyframe has not arrived shows nothing until it does), a packet for audio or where the
 * stack counts no frames. A track with no stats entry has none.
 */
export function flowing(report: RTCStatsReport | undefined, trackId: string): boolean {
  const seen = arrival(report, trackId);
  if (!seen) return false;
  return seen.framesDecoded !== undefined ? seen.framesDecoded > 0 : seen.packets > 0;
}
