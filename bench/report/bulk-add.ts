/**
 * Adds millions of generated ids to Redis fast enough to measure HLL accuracy at 10^7 on two
 * cores: commands are encoded straight into buffers (an id is a fixed prefix plus an 8-digit
 * counter, written digit by digit, no string per id) and written on a raw socket with a few in
 * flight. A client library would spend most of the time encoding arguments one by one; the
 * server's own work (hashing, registers) is the same either way.
 *
 * The socket only carries commands whose reply is one line (`:1`, `:0` or an `-ERR …` line),
 * so replies are counted by line; an error reply fails the next `drain()`.
 */

import { connect, type Socket } from "node:net";

/** Width of the counter at the end of every id: ids 0 … 99,999,999. */
export const COUNTER_DIGITS = 8;
export const MAX_COUNTER = 10 ** COUNTER_DIGITS - 1;
const IN_FLIGHT = 4;
const CRLF = "\r\n";

/** Ids `prefix + counter` (counter zero-padded to 8 digits) in RESP bulk-string form. */
export class IdFamily {
  readonly prefix: string;
  /** `$<len>\r\n<prefix>00000000\r\n`: copied, then the digits are overwritten. */
  private readonly slot: Buffer;

  constructor(prefix: string) {
    if (!/^[\x21-\x7e]*$/.test(prefix)) {
      throw new RangeError(`id prefix "${prefix}" must be printable ASCII without spaces`);
    }
    this.prefix = prefix;
    const id = `${prefix}${"0".repeat(COUNTER_DIGITS)}`;
    this.slot = Buffer.from(`$${id.length}${CRLF}${id}${CRLF}`, "latin1");
  }

  /** The id of a counter, as Redis receives it. */
  id(counter: number): string {
    return `${this.prefix}${String(counter).padStart(COUNTER_DIGITS, "0")}`;
  }

  /** Bytes of one encoded id. */
  get slotLength(): number {
    return this.slot.length;
  }

  /** Writes the encoded id of `counter` at `offset`; returns the offset after it. */
  write(buf: Buffer, offset: number, counter: number): number {
    this.slot.copy(buf, offset);
    let n = counter;
    let p = offset + this.slot.length - 3; // last digit, before the CRLF
    for (let d = 0; d < COUNTER_DIGITS; d++) {
      buf[p--] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    return offset + this.slot.length;
  }
}

/** `<verb> key id…` with the ids of `counters[0..count)`, as one RESP command. */
export function encodeAdd(
  verb: "PFADD" | "SADD",
  key: string,
  family: IdFamily,
  counters: ArrayLike<number>,
  count: number = counters.length,
): Buffer {
  for (let i = 0; i < count; i++) {
    const c = counters[i] ?? -1;
    if (!(c >= 0 && c <= MAX_COUNTER)) throw new RangeError(`id counter ${c} is out of range`);
  }
  const keyBytes = Buffer.byteLength(key);
  const head = `*${count + 2}${CRLF}$${verb.length}${CRLF}${verb}${CRLF}$${keyBytes}${CRLF}${key}${CRLF}`;
  const headBytes = Buffer.byteLength(head);
  const buf = Buffer.allocUnsafe(headBytes + count * family.slotLength);
  buf.write(head, 0);
  let offset = headBytes;
  for (let i = 0; i < count; i++) offset = family.write(buf, offset, counters[i] ?? 0);
  return buf;
}

/** A range of counters `from … to-1` as an array (for `encodeAdd`). */
export function counterRange(from: number, to: number): Int32Array {
  const out = new Int32Array(Math.max(0, to - from));
  for (let i = 0; i < out.length; i++) out[i] = from + i;
  return out;
}

/** Writes add commands on its own connection, a few in flight; `drain()` waits for every reply. */
export class BulkAdder {
  private readonly socket: Socket;
  private pending = 0;
  private atLineStart = true;
  private failure: Error | undefined;
  private waiters: (() => void)[] = [];
  private errorLine = "";
  private inError = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => {
      if (this.pending > 0) this.fail(new Error("redis-server closed the bulk connection"));
    });
  }

  static async connect(host: string, port: number): Promise<BulkAdder> {
    const socket = connect(port, host);
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new BulkAdder(socket);
  }

  /** Sends one encoded command; waits while too many are in flight. */
  async send(command: Buffer): Promise<void> {
    this.throwIfFailed();
    this.pending++;
    this.socket.write(command);
    while (this.pending >= IN_FLIGHT) await this.nextReply();
  }

  /** Waits until every command sent has its reply; throws the first error reply. */
  async drain(): Promise<void> {
    while (this.pending > 0) await this.nextReply();
    this.throwIfFailed();
  }

  close(): void {
    this.socket.destroy();
  }

  private nextReply(): Promise<void> {
    this.throwIfFailed();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private onData(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (this.atLineStart) {
        this.inError = byte === 0x2d; // "-"
        this.atLineStart = false;
      }
      if (this.inError && byte !== 0x0a && byte !== 0x0d) {
        this.errorLine += String.fromCharCode(byte ?? 0);
      }
      if (byte === 0x0a) {
        this.atLineStart = true;
        this.pending--;
        if (this.inError) {
          this.fail(new Error(`redis-server refused a bulk add: ${this.errorLine}`));
          this.errorLine = "";
          this.inError = false;
        }
      }
    }
    this.wake();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
