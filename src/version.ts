import { readFileSync } from './util/builtins.js';

/** Courier's version, from package.json (one level up from both src/ and dist/). */
export const version: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
