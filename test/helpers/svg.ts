/** A strict well-formedness check of the report's SVG charts (used by the report tests). */

import { expect } from "vitest";
import { type Figure, renderFigure } from "../../bench/report/charts.js";
import { type Stamp, stampText } from "../../bench/report/machine.js";

/**
 * Throws unless `svg` is one well-formed SVG document: an optional XML declaration, then a root
 * `<svg>` with the SVG namespace and numeric width and height, every tag properly nested and
 * closed, attribute values quoted, and no stray `<` or `&` in text. Returns the root's size and
 * the document's text content.
 */
export function checkSvg(svg: string): { width: number; height: number; text: string } {
  const body = svg.replace(/^<\?xml version="1\.0" encoding="UTF-8"\?>\s*/, "");
  const root = /^<svg(\s[^>]*)>/.exec(body);
  if (!root) throw new Error(`the document does not start with <svg>: ${body.slice(0, 80)}`);
  const attrs = root[1] ?? "";
  if (!attrs.includes('xmlns="http://www.w3.org/2000/svg"')) throw new Error("no SVG namespace");
  const width = Number(/\swidth="(\d+(?:\.\d+)?)"/.exec(attrs)?.[1]);
  const height = Number(/\sheight="(\d+(?:\.\d+)?)"/.exec(attrs)?.[1]);
  if (!(width > 0 && height > 0)) throw new Error(`the root has no size: ${attrs}`);
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  const stack: string[] = [];
  const texts: string[] = [];
  let p = 0;
  while (p < body.length) {
    const lt = body.indexOf("<", p);
    const text = body.slice(p, lt < 0 ? body.length : lt);
    if (/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(text)) {
      throw new Error(`a stray "&" in text: ${text.slice(0, 60)}`);
    }
    if (text.trim() !== "") {
      if (stack.length === 0) throw new Error(`text outside the root: ${text.slice(0, 60)}`);
      texts.push(text);
    }
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(body);
    if (!m) throw new Error(`malformed tag at ${lt}: ${body.slice(lt, lt + 80)}`);
    const [whole, closing, name = "", , selfClosing] = m;
    if (closing) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at ${lt}`);
    } else if (!selfClosing) {
      if (stack.length === 0 && lt !== 0) throw new Error(`a second root element <${name}>`);
      stack.push(name);
    }
    p = lt + whole.length;
    if (stack.length === 0 && body.slice(p).trim() !== "") {
      throw new Error("content after the root element");
    }
  }
  if (stack.length > 0) throw new Error(`unclosed elements: ${stack.join(" > ")}`);
  return { width, height, text: texts.join(" ") };
}

/**
 * Renders each figure as the report does (the real vega-lite renderer) and checks the result: a
 * well-formed SVG of a real size, showing its title and the stamp's machine and date.
 */
export async function expectFiguresRender(
  figures: readonly Figure[],
  stamp: Stamp,
  minHeight = 200,
): Promise<void> {
  for (const figure of figures) {
    const { width, height, text } = checkSvg(await renderFigure(figure, stamp));
    expect(width, figure.file).toBeGreaterThan(300);
    expect(height, figure.file).toBeGreaterThan(minHeight);
    const unescaped = text.replaceAll("&amp;", "&").replaceAll("&apos;", "'");
    expect(unescaped, figure.file).toContain(figure.title);
    expect(unescaped, figure.file).toContain(stampText(stamp));
  }
}
