/**
 * Packages as another application gets them: each built (`npm run build` in its directory),
 * packed (`npm pack`), and the tarballs installed into a project of its own in a temporary
 * directory. Their dependencies come from npm's cache or the registry, as for any application.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const repoRoot = resolve(import.meta.dirname, '../..');

export interface PackedApp {
  /** The project's directory. */
  dir: string;
  /** The `file:` URL of a file inside an installed package, for `import()`. */
  moduleUrl(packageName: string, file: string): string;
  /** Compiles `file` in the project with the repository's TypeScript under `strict`; 'ok' or the compiler's output. */
  typecheck(file: string): Promise<string>;
  remove(): void;
}

export async function installPacked(packages: string[]): Promise<PackedApp> {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-packed-'));
  const tarballs: string[] = [];
  for (const name of packages) {
    const packageDir = join(repoRoot, 'packages', name);
    await run('npm', ['run', 'build'], { cwd: packageDir });
    const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: packageDir });
    tarballs.push(join(dir, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename));
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'chorus-consumer', private: true, type: 'module' }));
  await run('npm', ['install', ...tarballs, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: dir });
  const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
  return {
    dir,
    moduleUrl: (packageName, file) => pathToFileURL(join(dir, 'node_modules', packageName, file)).href,
    typecheck: (file) =>
      run(process.execPath, [tsc, '--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,dom,dom.iterable', '--types', 'node', '--typeRoots', join(repoRoot, 'node_modules/@types'), file], { cwd: dir }).then(
        () => 'ok',
        (error: { stdout?: string }) => error.stdout ?? String(error),
      ),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
