import { type AddressInfo, createConnection } from "node:net";

/** The TCP port a listening server is bound to; fails if it is not listening on one. */
export function listeningPort(server: { address(): AddressInfo | string | null }): number {
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new Error(`the server is not listening on a TCP port (address: ${address})`);
  }
  return address.port;
}

/** Whether something accepts TCP connections on a loopback port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
