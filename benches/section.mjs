// BENCHMARKS.md is made of "## " sections, each written by one benchmark script.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

/** Replaces the section of `path` with the same "## " heading as `section` where it stands (a
 *  heading's bracketed tail may differ), or appends it when there is none. */
export async function writeSection(path, section) {
  const title = (s) => s.split('\n', 1)[0].replace(/ \(.*$/, '');
  const old = existsSync(path) ? await readFile(path, 'utf8') : '# Benchmarks\n';
  const parts = old.split(/^(?=## )/m).map((s) => s.trimEnd());
  const at = parts.findIndex((s) => title(s) === title(section));
  if (at < 0) parts.push(section.trimEnd());
  else parts[at] = section.trimEnd();
  await writeFile(path, `${parts.join('\n\n')}\n`);
}
