/** kinesalite 3 ships no type declarations; this is the part the project uses. */
declare module "kinesalite" {
  import type { Server } from "node:http";
  export interface KinesaliteOptions {
    /** LevelDB directory; in memory (memdown) when absent. */
    path?: string;
    createStreamMs?: number;
    deleteStreamMs?: number;
    updateStreamMs?: number;
    shardLimit?: number;
    ssl?: boolean;
  }
  export default function kinesalite(options?: KinesaliteOptions): Server;
}
