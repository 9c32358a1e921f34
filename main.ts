/** The CDKTF app: builds the stack from config; no logic here. */

import { App } from "cdktf";
import { SketchstreamStack } from "./stacks/sketchstream-stack.js";

const app = new App();
new SketchstreamStack(app, "sketchstream-dev", {
  region: "eu-west-1",
  namePrefix: "sketchstream-dev",
});
app.synth();
