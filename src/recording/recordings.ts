/**
 * Class recordings on this node: at most one running per room, each in its own directory
 * (`<dir>/<roomId>/<recordingId>/`), listed per tenant in the state store so the admin API of
 * any node can list them at once (each names the node that holds its files). Starting and
 * stopping are audited and kept in the records' `recordings` table, which is what lists them
 * after a restart (the memory store forgets, Redis may be flushed).
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditSink } from '../observability/audit.js';
import { ChorusError } from '../protocol/errors.js';
import type { Logger } from '../observability/logger.js';
import type { RecordingInfo } from '../protocol/room.js';
import type { StateStore } from '../store/stateStore.js';
import { endPlaylist, StageRun, type StageSources } from './stageRun.js';

export type RecordMode = 'off' | 'manual' | 'always';

/** The durable list (the records database), when the node keeps records. */
export interface RecordingArchive {
  recordings(tenant: string, limit: number): Promise<RecordingInfo[]>;
}

export interface RecordingSettings {
  /** Root of the recordings on this node. */
  dir: string;
  ffmpeg: string;
  segmentSeconds: number;
  /** `manual`: teachers start and stop; `always`: every class from its teacher's first track; `off`. */
  mode: RecordMode;
  /** A run sent media this long without writing a segment is hung: killed, and a new run continues. */
  stallMs: number;
}

/** Recordings listed per tenant (the newest first). */
const LIST_MAX = 500;
const LIST_TTL_SECONDS = 90 * 24 * 3600;
const MAX_ATTEMPTS = 8;
const MAX_RESTARTS = 5;

export class Recordings {
  readonly #active = new Map<string, Active>();

  constructor(
    readonly settings: RecordingSettings,
    private readonly store: StateStore,
    private readonly nodeId: string,
    private readonly audit: AuditSink,
    private readonly log: Logger,
    private readonly archive?: RecordingArchive,
  ) {}

  active(roomId: string): RecordingInfo | undefined {
    return this.#active.get(roomId)?.info;
  }

  /** The directory of one recording's files. */
  dirOf(roomId: string, recordingId: string): string {
    return join(this.settings.dir, roomId, recordingId);
  }

  /**
   * Starts recording the room's `stage` (one recording at a time per room: a second start returns
   * the running one). The stage is read again whenever it may have changed (`stageChanged`, or a
   * recorded track ending): a screen share starting or stopping switches the recording to it, in
   * the same playlist after a discontinuity; nothing left on stage ends the recording.
   */
  async start(roomId: string, tenant: string, stage: () => StageSources | undefined, by: string, onEnded: (info: RecordingInfo) => void): Promise<RecordingInfo> {
    const running = this.#active.get(roomId);
    if (running) return running.info;
    const sources = stage();
    if (!sources || (!sources.video && !sources.audio)) throw new ChorusError('NOTHING_TO_CONSUME', 'nobody is on the stage here to record yet');
    const info: RecordingInfo = { id: randomUUID(), roomId, node: this.nodeId, startedAt: Date.now(), by };
    const dir = this.dirOf(roomId, info.id);
    const run = mkdir(dir, { recursive: true }).then(() => this.#runOf(roomId, info, sources, false));
    const active: Active = { info, tenant, stage, onEnded, run, recorded: producerIds(sources), changes: Promise.resolve() };
    this.#active.set(roomId, active);
    try {
      await run;
    } catch (error) {
      this.#active.delete(roomId);
      this.log.error({ room: roomId, err: error }, 'recording could not start');
      throw error;
    }
    // Stopped while it was starting: it ended already.
    if (this.#active.get(roomId) !== active) return info;
    this.#watch(roomId, sources);
    this.#supervise(roomId, active, await run);
    await this.#list(tenant, (list) => [info, ...list.filter((r) => r.id !== info.id)]);
    // Students joining later, on any node, are told it runs (their fallback if WebRTC fails).
    const mark = (): Promise<void> => this.store.setValue(liveKey(roomId), JSON.stringify(info), LIVE_TTL_SECONDS);
    await mark();
    if (this.#active.get(roomId) === active) {
      // A lease, renewed while it runs: a node dying mid-recording leaves no mark for long.
      active.lease = setInterval(() => void mark().catch(() => undefined), (LIVE_TTL_SECONDS * 1000) / 3);
      active.lease.unref();
    }
    this.audit.record({ type: 'recording.started', room: roomId, tenant, id: info.id, by });
    this.log.info({ room: roomId, recording: info.id, by }, 'recording started');
    return info;
  }

  /**
   * The room's stage may have changed (a track published or unpublished): the recording follows
   * it. Changes are taken one at a time, each reading the stage as it is then.
   */
  stageChanged(roomId: string): Promise<void> {
    const active = this.#active.get(roomId);
    if (!active) return Promise.resolve();
    active.changes = active.changes.then(() => this.#follow(roomId, active)).catch((error: unknown) => this.log.warn({ room: roomId, err: error }, 'the recording could not follow the stage'));
    return active.changes;
  }

  async #follow(roomId: string, active: Active): Promise<void> {
    if (this.#active.get(roomId) !== active) return;
    const sources = active.stage();
    const live = sources && [sources.video, sources.audio].some((p) => p !== undefined && !p.closed);
    if (!sources || !live) {
      const ended = await this.stop(roomId, 'its tracks ended');
      if (ended) active.onEnded(ended);
      return;
    }
    const next = producerIds(sources);
    if (next === active.recorded) return;
    this.log.info({ room: roomId, recording: active.info.id, from: active.recorded, to: next }, 'recording follows the stage');
    const previous = await active.run.catch(() => undefined);
    await previous?.stop();
    if (this.#active.get(roomId) !== active) return;
    active.recorded = next;
    active.run = this.#runOf(roomId, active.info, sources, true);
    this.#supervise(roomId, active, await active.run);
    this.#watch(roomId, sources);
  }

  /**
   * ffmpeg ending by itself (a crash, a port another process took between our probe and its bind)
   * is followed by a new run continuing the playlist, after a growing pause; after
   * MAX_RESTARTS failures in a row the recording ends.
   */
  #supervise(roomId: string, active: Active, run: StageRun): void {
    const startedAt = Date.now();
    void run.endedByItself.then(async (byItself) => {
      if (!byItself || this.#active.get(roomId) !== active || (await active.run.catch(() => undefined)) !== run) return;
      // A run that went on for a while was not failing to start: the count starts again.
      const failures = Date.now() - startedAt > 30_000 ? 1 : (active.failures ?? 0) + 1;
      active.failures = failures;
      this.log.warn({ room: roomId, recording: active.info.id, exit: run.exit, ffmpeg: run.stderrTail, failures }, 'recording ffmpeg ended by itself');
      if (failures > MAX_RESTARTS) {
        const ended = await this.stop(roomId, 'ffmpeg kept failing');
        if (ended) active.onEnded(ended);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000 * failures).unref());
      if (this.#active.get(roomId) !== active) return;
      const sources = active.stage();
      if (!sources) return void this.stageChanged(roomId);
      active.recorded = producerIds(sources);
      active.run = this.#runOf(roomId, active.info, sources, true);
      this.#supervise(roomId, active, await active.run);
    }).catch((error: unknown) => this.log.warn({ room: roomId, err: error }, 'recording could not be restarted'));
  }

  #runOf(roomId: string, info: RecordingInfo, sources: StageSources, append: boolean): Promise<StageRun> {
    return StageRun.start(sources, { ffmpeg: this.settings.ffmpeg, dir: this.dirOf(roomId, info.id), segmentSeconds: this.settings.segmentSeconds, append, stallMs: this.settings.stallMs, log: this.log.child({ room: roomId, recording: info.id }) });
  }

  /** A recorded track ending changes the stage. */
  #watch(roomId: string, sources: StageSources): void {
    for (const producer of [sources.video, sources.audio]) producer?.observer.once('close', () => void this.stageChanged(roomId));
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
    if (await endPlaylist(this.dirOf(roomId, ended.id)).catch(() => false)) this.log.info({ room: roomId, recording: ended.id }, 'recording playlist ended by the node (ffmpeg was killed)');
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

  /**
   * `tenant`'s recordings, the newest first: the state store's list (it has a recording the
   * moment it starts or stops) over the records' (they have it after any restart, a moment later).
   */
  async list(tenant: string): Promise<RecordingInfo[]> {
    const [live, archived] = await Promise.all([this.#storeList(tenant), this.#archived(tenant)]);
    const byId = new Map(archived.map((r) => [r.id, r]));
    for (const r of live) {
      if (r.endedAt !== undefined || byId.get(r.id)?.endedAt === undefined) byId.set(r.id, r);
    }
    return [...byId.values()].sort((a, b) => b.startedAt - a.startedAt).slice(0, LIST_MAX);
  }

  /**
   * A recording of `tenant`'s listed by that id, if any. Every playlist and segment request asks:
   * the state store's list answers those of a recording it has, the records only the others.
   */
  async find(tenant: string, roomId: string, recordingId: string): Promise<RecordingInfo | undefined> {
    const matches = (r: RecordingInfo): boolean => r.id === recordingId && r.roomId === roomId;
    return (await this.#storeList(tenant)).find(matches) ?? (await this.#archived(tenant)).find(matches);
  }

  async #storeList(tenant: string): Promise<RecordingInfo[]> {
    const raw = await this.store.getValue(listKey(tenant));
    return raw === undefined ? [] : (JSON.parse(raw) as RecordingInfo[]);
  }

  async #archived(tenant: string): Promise<RecordingInfo[]> {
    return (
      this.archive?.recordings(tenant, LIST_MAX).catch((error: unknown) => {
        this.log.warn({ err: error }, 'recordings not read from the records; listing the state store\'s');
        return [];
      }) ?? []
    );
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

interface Active {
  info: RecordingInfo;
  tenant: string;
  /** The room's stage now. */
  stage: () => StageSources | undefined;
  onEnded: (info: RecordingInfo) => void;
  /** The run under way (a new one each time the stage's tracks change). */
  run: Promise<StageRun>;
  /** The producers it records, as one key. */
  recorded: string;
  /** Stage changes, taken one at a time. */
  changes: Promise<void>;
  lease?: NodeJS.Timeout | undefined;
  /** ffmpeg runs that ended by themselves in a row. */
  failures?: number | undefined;
}

function producerIds(sources: StageSources): string {
  return [sources.video, sources.audio].map((p) => (p && !p.closed ? p.id : '-')).join(' ');
}

/** A running recording's mark outlives a node that died recording by at most this. */
const LIVE_TTL_SECONDS = 30;

function liveKey(roomId: string): string {
  return `recording\0${roomId}`;
}

function listKey(tenant: string): string {
  return `recordings\0${tenant}`;
}
