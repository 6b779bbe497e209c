/** What a benchmark's command line does with --help and with a bad flag: usage, and exit 2. */
export interface Cli {
  /** Prints the message and the usage to stderr and exits 2. */
  fail(message: string): never;
  /** A whole number from min to max, or fail() naming the flag. */
  whole(name: string, value: string | undefined, min: number, max: number): number;
}

/** Prints the usage and exits 0 when --help was given; else answers the helpers for bad flags. */
export function cli(usageText: string, help: boolean | undefined): Cli {
  if (help) {
    process.stdout.write(`${usageText}\n`);
    process.exit(0);
  }
  const fail = (message: string): never => {
    process.stderr.write(`${message}\n${usageText}\n`);
    process.exit(2);
  };
  return {
    fail,
    whole(name, value, min, max) {
      const n = Number(value);
      return Number.isInteger(n) && n >= min && n <= max ? n : fail(`--${name} must be a whole number from ${min} to ${max}`);
    },
  };
}
