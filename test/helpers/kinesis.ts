/** Kinesis events and generator-style times for tests: the same builders the local runtime uses. */
export { generatorTime } from "../../cli/generator.js";
export { kinesisEvent } from "../../local/kinesis-event.js";
