import type { PlayerLike } from '../../src/client/watchClient.js';

/**
 * A player driven by the wall clock, for SDK tests in Node (no media element there): it moves
 * exactly as a video would, so a test can also knock it off by a known amount. The browser test
 * drives a real <video>.
 */
export class VirtualPlayer implements PlayerLike {
  src = '';
  ended = false;
  #anchor = 0;
  #at = Date.now();
  #paused = true;
  #rate = 1;
  seeks = 0;

  get paused(): boolean {
    return this.#paused;
  }
  get currentTime(): number {
    return this.#paused ? this.#anchor : this.#anchor + ((Date.now() - this.#at) / 1000) * this.#rate;
  }
  set currentTime(value: number) {
    this.seeks++;
    this.#reanchor(value);
  }
  get playbackRate(): number {
    return this.#rate;
  }
  set playbackRate(rate: number) {
    this.#reanchor(this.currentTime);
    this.#rate = rate;
  }
  play(): void {
    this.#reanchor(this.currentTime);
    this.#paused = false;
  }
  pause(): void {
    this.#reanchor(this.currentTime);
    this.#paused = true;
  }
  /** Moves the media by `seconds` without counting as a seek the SDK made (a stall, a skip). */
  knock(seconds: number): void {
    this.#reanchor(this.currentTime + seconds);
  }
  #reanchor(position: number): void {
    this.#anchor = Math.max(0, position);
    this.#at = Date.now();
  }
}
