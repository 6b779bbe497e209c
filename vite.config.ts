/**
 * Builds the browser pages (src/web) into dist/web, which the node serves. `npm run build:web`
 * builds; `npx vite` serves the pages with hot reload and forwards the API and signaling to a
 * node running on CHORUS_DEV_TARGET (default http://127.0.0.1:3000).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

/** The watch page's sample video, generated with ffmpeg (scripts/sample-video.mjs), not downloaded. */
const sampleVideo: Plugin = {
  name: 'chorus-sample-video',
  apply: 'build',
  closeBundle() {
    try {
      execFileSync(process.execPath, [fileURLToPath(new URL('./scripts/sample-video.mjs', import.meta.url))], { stdio: 'inherit' });
    } catch {
      this.warn('no sample video for the watch page (is ffmpeg installed?): run npm run sample-video');
    }
  },
};

const root = fileURLToPath(new URL('./src/web', import.meta.url));
const page = (name: string): string => fileURLToPath(new URL(`./src/web/${name}.html`, import.meta.url));
const target = process.env['CHORUS_DEV_TARGET'] ?? 'http://127.0.0.1:3000';

export default defineConfig({
  root,
  // The pages use the client SDK as an application does, by its package name; here it resolves
  // to the sources the package is built from.
  resolve: {
    alias: [
      { find: /^@chorus-rtc\/client$/, replacement: fileURLToPath(new URL('./src/client/index.ts', import.meta.url)) },
      { find: /^@chorus-rtc\/client\/hls$/, replacement: fileURLToPath(new URL('./src/client/hlsPlayer.ts', import.meta.url)) },
    ],
  },
  base: '/',
  // The pages are served by the node; nothing in public/ and no env files to read.
  publicDir: false,
  envDir: false,
  build: {
    outDir: fileURLToPath(new URL('./dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rolldownOptions: {
      input: { index: page('index'), broadcast: page('broadcast'), listen: page('listen'), watch: page('watch'), call: page('call'), class: page('class') },
    },
  },
  plugins: [sampleVideo],
  server: {
    proxy: {
      '/api': target,
      '/socket.io': { target, ws: true },
    },
  },
});
