/**
 * Class recordings on this node: at most one running per room, each in its own directory
 * (`<dir>/<roomId>/<recordingId>/`), listed per tenant in the state store so the admin API of
 * any node can list them (each names the node that holds its files). Starting and stopping are
 * audited, so they are in the records too.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditSink } from '../observability/audit.js';
import type { Logger } from '../observability/logger.js';
import type { RecordingInfo } from '../protocol/room.js';
import type { StateStore } from '../store/stateStore.js';
import { StageRun, type StageSources } from './stageRun.js';

export type RecordMode = 'off' | 'manual' | 'always';

export interface RecordingSettings {
  /** Root of the recordings on this node. */
  dir: string;
  ffmpeg: string;
  segmentSeconds: number;
  /** `manual`: teachers start and stop; `always`: every class from its teacher's first track; `off`. */
  mode: RecordMode;
}

/** Recordings listed per tenant (the newest first). */
const LIST_MAX = 500;
const LIST_TTL_SECONDS = 90 * 24 * 3600;
const MAX_ATTEMPTS = 8;

export class Recordings {
  readonly #active = new Map<string, { info: RecordingInfo; tenant: string; run: Promise<StageRun>; lease?: NodeJS.Timeout }>();

  constructor(
    readonly settings: RecordingSettings,
    private readonly store: StateStore,
    private readonly nodeId: string,
    private readonly audit: AuditSink,
    private readonly log: Logger,
  ) {}

  active(roomId: string): RecordingInfo | undefined {
    return this.#active.get(roomId)?.info;
  }

  /** The directory of one recording's files. */
  dirOf(roomId: string, recordingId: string): string {
    return join(this.settings.dir, roomId, recordingId);
  }

  /**
   * Starts recording `sources` (one at a time per room: a second start returns the running one).
   * When a recorded track ends, so does the recording.
   */
  async start(roomId: string, tenant: string, sources: StageSources, by: string, onEnded: (info: RecordingInfo) => void): Promise<RecordingInfo> {
    const running = this.#active.get(roomId);
    if (running) return running.info;
    const info: RecordingInfo = { id: randomUUID(), roomId, node: this.nodeId, startedAt: Date.now(), by };
    const dir = this.dirOf(roomId, info.id);
    const run = mkdir(dir, { recursive: true }).then(() => StageRun.start(sources, { ffmpeg: this.settings.ffmpeg, dir, segmentSeconds: this.settings.segmentSeconds, log: this.log.child({ room: roomId, recording: info.id }) }));
    this.#active.set(roomId, { info, tenant, run });
    try {
      await run;
    } catch (error) {
      this.#active.delete(roomId);
      this.log.error({ room: roomId, err: error }, 'recording could not start');
      throw error;
    }
    // Stopped while it was starting: it ended already.
    if (this.#active.get(roomId)?.info.id !== info.id) return info;
    for (const producer of [sources.video, sources.audio]) {
      producer?.observer.once('close', () => {
        if (this.#active.get(roomId)?.info.id !== info.id) return;
        void this.stop(roomId, 'its track ended').then((ended) => ended && onEnded(ended));
      });
    }
    await this.#list(tenant, (list) => [info, ...list.filter((r) => r.id !== info.id)]);
    // Students joining later, on any node, are told it runs (their fallback if WebRTC fails).
    const mark = (): Promise<void> => this.store.setValue(liveKey(roomId), JSON.stringify(info), LIVE_TTL_SECONDS);
    await mark();
    const active = this.#active.get(roomId);
    if (active?.info.id === info.id) {
      // A lease, renewed while it runs: a node dying mid-recording leaves no mark for long.
      active.lease = setInterval(() => void mark().catch(() => undefined), (LIVE_TTL_SECONDS * 1000) / 3);
      active.lease.unref();
    }
    this.audit.record({ type: 'recording.started', room: roomId, id: info.id, by });
    this.log.info({ room: roomId, recording: info.id, by }, 'recording started');
    return info;
  }

  /** Stops the room's recording, if one runs here: its playlist is ended and it becomes the replay. */
  async stop(roomId: string, by: string): Promise<RecordingInfo | undefined> {
    const running = this.#active.get(roomId);
    if (!running) return undefined;
    this.#active.delete(roomId);
    clearInterval(running.lease);
    await this.store.deleteValue(liveKey(roomId), JSON.stringify(running.info)).catch(() => undefined);
    const run = await running.run.catch(() => undefined);
    await run?.stop();
    const ended: RecordingInfo = { ...running.info, endedAt: Date.now() };
    if (run?.exit && run.exit.code !== 0 && run.exit.signal === null) {
      this.log.warn({ room: roomId, recording: ended.id, exit: run.exit, ffmpeg: run.stderrTail }, 'recording ffmpeg ended with an error');
    }
    await this.#list(running.tenant, (list) => list.map((r) => (r.id === ended.id ? ended : r))).catch((error: unknown) => this.log.warn({ err: error }, 'recording list not updated'));
    this.audit.record({ type: 'recording.stopped', room: roomId, id: ended.id, by, durationMs: ended.endedAt! - ended.startedAt });
    this.log.info({ room: roomId, recording: ended.id, by }, 'recording stopped');
    return ended;
  }

  /** The recording of `roomId` running now, on this node or another. */
  async live(roomId: string): Promise<RecordingInfo | undefined> {
    const raw = await this.store.getValue(liveKey(roomId));
    return raw === undefined ? undefined : (JSON.parse(raw) as RecordingInfo);
  }

  async list(tenant: string): Promise<RecordingInfo[]> {
    const raw = await this.store.getValue(listKey(tenant));
    return raw === undefined ? [] : (JSON.parse(raw) as RecordingInfo[]);
  }

  /** A recording of `tenant`'s listed by that id, if any. */
  async find(tenant: string, roomId: string, recordingId: string): Promise<RecordingInfo | undefined> {
    return (await this.list(tenant)).find((r) => r.id === recordingId && r.roomId === roomId);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#active.keys()].map((roomId) => this.stop(roomId, 'node closing')));
  }

  async #list(tenant: string, change: (list: RecordingInfo[]) => RecordingInfo[]): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const raw = await this.store.getValue(listKey(tenant));
      const list = raw === undefined ? [] : (JSON.parse(raw) as RecordingInfo[]);
      if (await this.store.swapValue(listKey(tenant), raw, JSON.stringify(change(list).slice(0, LIST_MAX)), LIST_TTL_SECONDS)) return;
    }
    throw new Error('the recording list is changing too fast');
  }
}

/** A running recording's mark outlives a node that died recording by at most this. */
const LIVE_TTL_SECONDS = 30;

function liveKey(roomId: string): string {
  return `recording\0${roomId}`;
}

function listKey(tenant: string): string {
  return `recordings\0${tenant}`;
}
