/**
 * The read API benchmark's load client (bench/api.ts measureApiCases): the child process that
 * sends the timed requests, so their CPU is not the servers' event loop. It is bench/api.bench.ts
 * run with LOAD_CLIENT_FLAG, which then imports only this module (Node's own modules and
 * messageOf), so the child starts in a moment.
 */

import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { messageOf } from "../functions/domain/errors.js";

/** The argument that makes bench/api.bench.ts the load client (the child process), not the benchmark. */
export const LOAD_CLIENT_FLAG = "--load-client";

export interface LoadJob {
  readonly port: number;
  readonly path: string;
  readonly requests: number;
  readonly concurrency: number;
  /** Bytes every answer must have: the body checked before timing. */
  readonly expectedBytes: number;
}

export interface LoadResult {
  /** Per request, ms from writing the request to reading its last byte. */
  readonly latenciesMs: number[];
  /** From the first request sent to the last answer read. */
  readonly wallMs: number;
  readonly failures: number;
  readonly firstFailure?: string;
}

export type ToClient = { readonly id: number; readonly job: LoadJob };
export type FromClient =
  | { readonly id: number; readonly result: LoadResult }
  | { readonly id: number; readonly error: string };

/** In the child: runs jobs, one at a time, keeping one keep-alive pool per server. */
export function serveLoadJobs(): void {
  const agents = new Map<number, Agent>();
  const get = (agent: Agent, job: LoadJob) =>
    new Promise<{ ms: number; status: number; bytes: number }>((resolve, reject) => {
      const start = performance.now();
      const req = request(
        { host: "127.0.0.1", port: job.port, path: job.path, agent, method: "GET" },
        (res) => {
          let bytes = 0;
          res.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
          });
          res.on("end", () =>
            resolve({ ms: performance.now() - start, status: res.statusCode ?? 0, bytes }),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
  const run = async (job: LoadJob): Promise<LoadResult> => {
    let agent = agents.get(job.port);
    if (!agent) {
      agent = new Agent({ keepAlive: true, maxSockets: job.concurrency, keepAliveMsecs: 1000 });
      agents.set(job.port, agent);
    }
    const latenciesMs: number[] = [];
    let failures = 0;
    let firstFailure: string | undefined;
    let issued = 0;
    const start = performance.now();
    const worker = async (pool: Agent) => {
      while (issued < job.requests) {
        issued++;
        try {
          const r = await get(pool, job);
          latenciesMs.push(r.ms);
          if (r.status !== 200 || r.bytes !== job.expectedBytes) {
            failures++;
            firstFailure ??= `HTTP ${r.status}, ${r.bytes} bytes (expected 200, ${job.expectedBytes} bytes)`;
          }
        } catch (err) {
          failures++;
          firstFailure ??= messageOf(err);
        }
      }
    };
    await Promise.all(Array.from({ length: job.concurrency }, () => worker(agent)));
    return {
      latenciesMs,
      wallMs: performance.now() - start,
      failures,
      ...(firstFailure === undefined ? {} : { firstFailure }),
    };
  };
  process.on("message", (message: ToClient) => {
    run(message.job).then(
      (result) => process.send?.({ id: message.id, result } satisfies FromClient),
      (err: unknown) =>
        process.send?.({
          id: message.id,
          error: messageOf(err),
        } satisfies FromClient),
    );
  });
  // The benchmark went away: nothing left to do.
  process.on("disconnect", () => process.exit(0));
}
