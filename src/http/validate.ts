import type { z } from 'zod';
import { ChorusError } from '../protocol/errors.js';

/** `value` checked against `schema`, or a BAD_REQUEST naming the first problem and where (`what`: path, body, query). */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ChorusError('BAD_REQUEST', `${what} ${issue?.path.join('.') || ''}: ${issue?.message}`.replace(/ +:/, ':'));
  }
  return parsed.data;
}
