/**
 * Requests to the dashboard the way any client could send them, Host header included (fetch
 * sets Host from the URL; a DNS-rebinding page's requests carry its own name instead).
 */

import { request } from "node:http";

export interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

export function rawRequest(
  port: number,
  options: {
    readonly method?: string;
    readonly path: string;
    readonly headers?: Record<string, string>;
  },
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path,
        headers: { host: `127.0.0.1:${port}`, ...options.headers },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The JSON body of an answer; fails naming the status and text when it is not JSON. */
export function jsonOf(answer: RawAnswer): unknown {
  try {
    return JSON.parse(answer.text);
  } catch {
    throw new Error(
      `HTTP ${answer.status} answered with something that is not JSON: ${answer.text.slice(0, 200)}`,
    );
  }
}
