import * as v from "valibot";

/** `value` checked against `schema`; a mismatch fails naming `what` and each issue's path. */
export function checked<S extends v.GenericSchema>(
  schema: S,
  value: unknown,
  what: string,
): v.InferOutput<S> {
  const result = v.safeParse(schema, value);
  if (!result.success) {
    throw new Error(`${what} is not as expected:\n${v.summarize(result.issues)}`);
  }
  return result.output;
}
