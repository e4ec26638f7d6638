/** Compiles a model glob (`*` any run, `?` one character) into an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let out = '^';
  for (const ch of glob) {
    if (ch === '*') out += '.*';
    else if (ch === '?') out += '.';
    else out += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(out + '$', 's');
}

/** True when `name` matches `glob`. */
export function globMatch(glob: string, name: string): boolean {
  return globToRegExp(glob).test(name);
}
