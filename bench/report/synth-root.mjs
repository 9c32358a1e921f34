/**
 * Preload of the synth experiment's package-root variant (bench/report/synth.ts), given to node
 * with `--import` before the app: loads @cdktf/provider-aws by its package root, as
 * `import { … } from "@cdktf/provider-aws"` in a stack would. The root's lib/index.js requires
 * every resource and data-source namespace eagerly, so this loads all of them; the app's own
 * deep imports then find their modules already loaded.
 */

import "@cdktf/provider-aws";
