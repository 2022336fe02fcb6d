// BENCHMARKS.md is made of "## " sections, each written by one benchmark script.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

/** Replaces (or appends) the section of `path` with the same "## " heading as `section`. */
export async function writeSection(path, section) {
  const heading = section.split('\n', 1)[0];
  const old = existsSync(path) ? await readFile(path, 'utf8') : '# Benchmarks\n';
  const parts = old.split(/^(?=## )/m).filter((s) => s.split('\n', 1)[0].replace(/ \(.*$/, '') !== heading.replace(/ \(.*$/, ''));
  await writeFile(path, `${parts.map((s) => s.trimEnd()).join('\n\n')}\n\n${section}`);
}
