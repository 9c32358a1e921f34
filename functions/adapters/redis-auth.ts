/**
 * Authentication of every new Redis connection with a credential fetched for that connection.
 *
 * ioredis reads `password` once, when a connection starts, and offers no credential provider:
 * a client that reconnects (MemoryDB drops IAM connections after 12 hours; a failover, a
 * `CLIENT KILL`) would present a stale IAM token (valid 15 minutes) or a rotated password. So
 * the client is given no password at all; this connector (ioredis's `Connector` option, which
 * every node of a Cluster inherits) opens the socket, asks `credential()` for the password of
 * this connection, sends `AUTH user password` and hands the authenticated socket to ioredis.
 * A failure destroys the socket and records the error, so ioredis treats it like any failed
 * connection and retries with its strategy, asking for a credential again.
 */

import { once } from "node:events";
import { createConnection, type Socket } from "node:net";
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from "node:tls";
import { AbstractConnector, type RedisOptions } from "ioredis";
import { withTimeout } from "../domain/timeouts.js";

/** The password of one new connection (an IAM token signed now, a secret read now, …). */
export type CredentialSource = () => Promise<string>;

type ConnectorConstructor = NonNullable<RedisOptions["Connector"]>;

/** What ioredis passes a connector: the client's own options (host, port, tls, …). */
interface ClientAddress {
  readonly host?: string;
  readonly port?: number;
  readonly tls?: ConnectionOptions;
  readonly disconnectTimeout?: number;
}

function isClientAddress(options: unknown): options is ClientAddress {
  return typeof options === "object" && options !== null;
}

/** RESP encoding of a command: an array of bulk strings. */
export function respCommand(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
}

/** Sends AUTH on a connected socket and waits for its one-line reply (the caller bounds it). */
async function authenticate(
  stream: Socket | TLSSocket,
  user: string,
  password: string,
): Promise<void> {
  let received = Buffer.alloc(0);
  let onData: (chunk: Buffer) => void = () => {};
  const reply = new Promise<string>((resolve) => {
    onData = (chunk) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf("\r\n");
      if (end < 0) return;
      // Nothing else is expected before ioredis sends a command; give back anything that came.
      if (received.length > end + 2) stream.unshift(received.subarray(end + 2));
      resolve(received.subarray(0, end).toString("utf8"));
    };
    stream.on("data", onData);
  });
  stream.write(respCommand(["AUTH", user, password]));
  try {
    const line = await Promise.race([reply, closedBeforeReply(stream)]);
    if (!line.startsWith("+")) throw new Error(`AUTH as ${user} was refused: ${line.slice(1)}`);
  } finally {
    stream.removeListener("data", onData);
  }
}

async function closedBeforeReply(stream: Socket | TLSSocket): Promise<never> {
  await once(stream, "close");
  throw new Error("the connection closed before AUTH was answered");
}

/**
 * An ioredis Connector class that authenticates each connection it opens as `user` with a
 * credential from `credential()`, within `timeoutMs` for connect, credential and AUTH together.
 */
export function authenticatingConnector(
  user: string,
  credential: CredentialSource,
  timeoutMs: number,
): ConnectorConstructor {
  return class AuthenticatingConnector extends AbstractConnector {
    private readonly address: ClientAddress;

    /** ioredis passes the client's options, typed `unknown` in its connector interface. */
    constructor(options: unknown) {
      if (!isClientAddress(options)) {
        throw new TypeError("ioredis gave the connector no connection options object");
      }
      super(options.disconnectTimeout ?? 2000);
      this.address = options;
    }

    async connect(): Promise<Socket | TLSSocket> {
      const { host = "127.0.0.1", port = 6379, tls } = this.address;
      this.connecting = true;
      const stream = tls ? tlsConnect({ ...tls, host, port }) : createConnection({ host, port });
      this.stream = stream;
      stream.once("error", (err) => {
        this.firstError = err;
      });
      try {
        await withTimeout(
          (async () => {
            if (stream.connecting) await once(stream, tls ? "secureConnect" : "connect");
            const password = await credential();
            await authenticate(stream, user, password);
          })(),
          timeoutMs,
          `connecting to ${host}:${port} as ${user}`,
        );
      } catch (err) {
        // ioredis reports firstError and closes, then reconnects by its retry strategy.
        this.firstError = err instanceof Error ? err : new Error(String(err));
        stream.destroy();
      }
      return stream;
    }
  };
}
