/** What a page plays, measured in the page: videos that advance, audio elements carrying sound. */
import type { Page } from 'playwright-core';

/** Remote video tiles whose video has frames and whose playback advances. */
export async function playingVideos(page: Page, selector = 'video'): Promise<number> {
  return page.evaluate(async (selector) => {
    const videos = [...document.querySelectorAll<HTMLVideoElement>(selector)];
    const before = videos.map((v) => v.currentTime);
    await new Promise((resolve) => setTimeout(resolve, 300));
    return videos.filter((v, i) => v.videoWidth > 0 && v.currentTime > before[i]!).length;
  }, selector);
}

/** Remote audio elements carrying sound: Chromium's fake microphone beeps, so sample for a while. */
export async function audibleStreams(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const elements = [...document.querySelectorAll<HTMLAudioElement>('audio')];
    const context = new AudioContext();
    await context.resume();
    const analysers = elements.map((audio) => {
      const analyser = context.createAnalyser();
      context.createMediaStreamSource(audio.srcObject as MediaStream).connect(analyser);
      return analyser;
    });
    const heard = new Set<number>();
    const samples = new Float32Array(2048);
    for (let i = 0; i < 60 && heard.size < analysers.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      analysers.forEach((analyser, n) => {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const s of samples) sum += s * s;
        if (Math.sqrt(sum / samples.length) > 0.005) heard.add(n);
      });
    }
    await context.close();
    return heard.size;
  });
}
