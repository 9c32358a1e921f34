import type { AddressInfo } from "node:net";

/** The TCP port a listening server is bound to; fails if it is not listening on one. */
export function listeningPort(server: { address(): AddressInfo | string | null }): number {
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new Error(`the server is not listening on a TCP port (address: ${address})`);
  }
  return address.port;
}
