/**
 * What produced a figure: the machine (cores, CPU model, Node, redis-server) and the date. Every
 * chart and every generated block of docs/benchmarks.md carries it, because a rate measured on
 * 2 shared cores means little without saying so.
 */

import { availableParallelism, cpus } from "node:os";

export interface Machine {
  readonly cores: number;
  readonly cpuModel: string;
  readonly node: string;
  /** Version of the redis-server the figures were measured on (`INFO server`). */
  readonly redis: string;
}

/** Who, when and where: stamped on every chart and generated block. */
export interface Stamp {
  /** The command that regenerates the figure, e.g. `npm run bench:report`. */
  readonly command: string;
  /** UTC date of the run, `YYYY-MM-DD`. */
  readonly date: string;
  readonly machine: Machine;
}

/** This process's machine, with the version of the redis-server it measured. */
export function thisMachine(redisVersion: string): Machine {
  const model = cpus()[0]?.model.trim() || "unknown CPU";
  return {
    cores: availableParallelism(),
    cpuModel: model.replace(/\s+/g, " "),
    node: process.version,
    redis: redisVersion,
  };
}

/** `2 cores, AMD EPYC, Node v22.23.3, redis-server 7.0.15`. */
export function machineText(machine: Machine): string {
  const cores = `${machine.cores} ${machine.cores === 1 ? "core" : "cores"}`;
  return `${cores}, ${machine.cpuModel}, Node ${machine.node}, redis-server ${machine.redis}`;
}

/** One line for a chart: the machine and the date. */
export function stampText(stamp: Stamp): string {
  return `${machineText(stamp.machine)}; ${stamp.date}`;
}

/** The UTC date of an instant, `YYYY-MM-DD`. */
export function utcDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
