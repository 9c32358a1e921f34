import { describe, expect, it } from "vitest";
import {
  assertTestClockUsable,
  configuredTestNow,
  DAY_MS,
  DEFAULT_TEST_NOW,
} from "../helpers/clock.js";

describe("the test clock", () => {
  it("defaults to a fixed instant and reads TEST_NOW when set", () => {
    expect(configuredTestNow({})).toBe(Date.parse(DEFAULT_TEST_NOW));
    expect(configuredTestNow({ TEST_NOW: "2031-12-28T23:30:00Z" })).toBe(
      Date.parse("2031-12-28T23:30:00Z"),
    );
  });

  it("refuses a TEST_NOW that is not a UTC instant, naming the variable", () => {
    for (const bad of [
      "tomorrow",
      "2031-12-28",
      "2031-12-28T23:30:00+01:00",
      "2031-13-01T00:00Z",
    ]) {
      expect(() => configuredTestNow({ TEST_NOW: bad }), bad).toThrow(/TEST_NOW=".*" is not a UTC/);
    }
  });

  it("fails loudly when TEST_NOW minus the retention is before the real now", () => {
    const realNow = Date.parse("2030-01-01T00:00:00Z");
    expect(() => assertTestClockUsable(realNow + 62 * DAY_MS, 62, realNow)).not.toThrow();
    expect(() => assertTestClockUsable(realNow + 61 * DAY_MS, 62, realNow)).toThrow(
      /minus the 62-day retention .* is before the real now .*EXPIREAT in the past/,
    );
  });
});
