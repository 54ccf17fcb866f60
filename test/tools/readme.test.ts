/** README's CLI reference is the commands' own help, regenerated, never hand-edited. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { updateReadme } from "../../tools/cli-reference.js";
import { COMMANDS } from "../../host/cli/commands.js";
import { ROOT } from "../support/paths.js";

test("README opens with the two commands a newcomer types", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const firstBlock = readme.slice(readme.indexOf("```"), readme.indexOf("```", readme.indexOf("```") + 3));
  expect(firstBlock).toMatch(/^make demo/m);
  expect(firstBlock).toMatch(/^make test/m);
});

test("the CLI reference in README matches every command's --help (tools/cli-reference.js --write)", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  expect(readme).toBe(updateReadme(readme));
  for (const c of COMMANDS) expect(readme).toContain(`#### fobkit ${c.name}\n`);
});
