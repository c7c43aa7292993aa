import { HttpVerb, type HttpVerbName } from '../../proto/index.js';

const verbNames: readonly string[] = Object.keys(HttpVerb);

/** The `HTTPExtension.Verb` of an HTTP method; unknown methods travel as POST, as Dapr does. */
export function verbToEnum(verb: string): number {
  return HttpVerb[verb as HttpVerbName] ?? HttpVerb.POST;
}

/** The HTTP method of a `HTTPExtension.Verb`, or undefined for NONE, CONNECT and unknown values. */
export function verbFromEnum(value: number | undefined): string | undefined {
  if (value === undefined || value === HttpVerb.NONE || value === HttpVerb.CONNECT) return undefined;
  return verbNames[value];
}
