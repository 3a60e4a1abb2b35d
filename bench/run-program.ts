/**
 * The one way the benchmarks time another program (our command, `pkcs15-tool`, `pkcs11-tool`,
 * `sc-hsm-tool`, the PKCS#11 harness, `node -e 0`): spawned without blocking the event loop, since
 * the virtual card behind vpcd answers from this process. Not a benchmark itself (no `.bench.ts`).
 */
import { spawn } from 'node:child_process';

/** How one benchmark runs its programs. */
export interface RunProgramOptions {
  /** The program is killed (SIGKILL) after this long; it then counts as failed. */
  timeoutMs: number;
  /** Its working directory (default: this process's). */
  cwd?: string;
  /** Whether a failure's message carries the program's stdout after its stderr. */
  stdoutInError?: boolean;
}

/**
 * Runs `cmd args` with `env`: its wall time from spawn to close and its stdout; rejects naming the
 * command, its exit code and its stderr when it does not exit 0.
 */
export function timeProgram(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  options: RunProgramOptions,
): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, {
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) {
        const shown = options.stdoutInError ? Buffer.concat(out).toString() : '';
        reject(
          new Error(`${cmd} ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString()}${shown}`),
        );
      } else resolve({ ms, stdout: Buffer.concat(out).toString() });
    });
  });
}
