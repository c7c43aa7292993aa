import { HttpVerb, type HttpVerbName } from '../proto/index.js';

const verbNames: readonly string[] = Object.keys(HttpVerb);

/** The `HTTPExtension.Verb` of an HTTP method; unknown methods travel as POST, as Dapr does. */
export function verbToEnum(verb: string): number {
  return HttpVerb[verb as HttpVerbName] ?? HttpVerb.POST;
}

/**
 * The verb name of a `HTTPExtension.Verb` (`NONE` and `CONNECT` included: whether they are acceptable
 * is up to the app channel), or undefined for a value outside the enum.
 */
export function verbFromEnum(value: number | undefined): string | undefined {
  return verbNames[value ?? HttpVerb.NONE];
}

/** Dapr's refusal of a verb an HTTP app cannot be called with: `''` (no extension), `NONE`, `CONNECT`. */
export function unusableVerbProblem(verb: string): string | undefined {
  if (verb === '') return 'missing HTTP extension field';
  if (verb === 'NONE' || verb === 'CONNECT') return 'invalid HTTP verb';
  return undefined;
}
