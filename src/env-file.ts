// The env file of `--env-file FILE`, read the way systemd reads an `EnvironmentFile=`: one
// `KEY=value` per line; blank lines and lines starting with `#` or `;` are comments; whitespace
// around the key and before the value is dropped, and after an unquoted value too; a value may be
// in single quotes (taken as it is) or double quotes (where `\"`, `\\`, `\$` and `` \` `` stand for
// the character, and a backslash at the end of a line joins the next); both kinds of quotes may
// span lines; outside quotes a backslash escapes the next character (at the end of a line it joins
// the next). `$VAR` is not expanded (systemd does not either). Unlike systemd, a line that is not
// an assignment or names an invalid variable is an error naming its line, not silently skipped.

export class EnvFileError extends Error {
  override name = 'EnvFileError';
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOUBLE_QUOTE_ESCAPES = new Set(['"', '\\', '`', '$']);

/** The assignments of `text`, in order (a key given twice: the later wins). `file` names it in errors. */
export function parseEnvFile(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  const src = text.replace(/\r\n/g, '\n');
  let i = 0;
  let line = 1;
  const fail = (why: string, at = line): never => { throw new EnvFileError(`${file} line ${at}: ${why}`); };
  const next = (): string => {
    const c = src[i++];
    if (c === '\n') line++;
    return c;
  };
  while (i < src.length) {
    // Leading whitespace, blank lines, comments.
    const c = src[i];
    if (c === ' ' || c === '\t' || c === '\n') { next(); continue; }
    if (c === '#' || c === ';') {
      while (i < src.length && src[i] !== '\n') next();
      continue;
    }
    const start = line;
    let key = '';
    while (i < src.length && src[i] !== '=' && src[i] !== '\n') key += next();
    if (src[i] !== '=') fail(`"${key.trim()}" is not a KEY=value assignment`, start);
    next();
    key = key.trim();
    if (!NAME.test(key)) fail(`"${key}" is not a valid variable name`, start);
    while (src[i] === ' ' || src[i] === '\t') next();
    let value = '';
    // Unquoted trailing whitespace is dropped; quoted or escaped whitespace is kept.
    let kept = 0;
    while (i < src.length && src[i] !== '\n') {
      const ch = next();
      if (ch === "'") {
        const from = line;
        while (i < src.length && src[i] !== "'") value += next();
        if (i >= src.length) fail('a single quote is never closed', from);
        next();
        kept = value.length;
      } else if (ch === '"') {
        const from = line;
        while (i < src.length && src[i] !== '"') {
          const q = next();
          if (q !== '\\') { value += q; continue; }
          const e = next();
          if (e === '\n') continue;
          value += DOUBLE_QUOTE_ESCAPES.has(e) ? e : `\\${e ?? ''}`;
        }
        if (i >= src.length) fail('a double quote is never closed', from);
        next();
        kept = value.length;
      } else if (ch === '\\') {
        if (i >= src.length) break;
        const e = next();
        if (e !== '\n') value += e;
        kept = value.length;
      } else {
        value += ch;
        if (ch !== ' ' && ch !== '\t') kept = value.length;
      }
    }
    out.set(key, value.slice(0, Math.max(kept, 0)));
  }
  return out;
}
