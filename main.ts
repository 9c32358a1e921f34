/**
 * The CDKTF app: one stack per environment of stacks/config.ts, named by its name prefix
 * (`cdktf deploy sketchstream-dev`). No logic here.
 */

import { App } from "cdktf";
import { ENVIRONMENT_NAMES, loadConfig } from "./stacks/config.js";
import { SketchstreamStack } from "./stacks/sketchstream-stack.js";

const app = new App();
for (const name of ENVIRONMENT_NAMES) {
  const config = loadConfig(name);
  new SketchstreamStack(app, config.namePrefix, { config });
}
app.synth();
