import * as v from "valibot";

/** What promisified execFile rejects with when the child ran and exited with a non-zero code. */
const ExitFailureSchema = v.object({ code: v.number(), stdout: v.string(), stderr: v.string() });

export type ExitFailure = v.InferOutput<typeof ExitFailureSchema>;

/**
 * The exit code and output of a child that exited with a failure code. Anything else (a child
 * killed by the timeout, a program that could not be started) is rethrown as it was.
 */
export function exitFailure(err: unknown): ExitFailure {
  const killed = err instanceof Error && "killed" in err && err.killed === true;
  const failure = v.safeParse(ExitFailureSchema, err);
  if (killed || !failure.success) throw err;
  return failure.output;
}
