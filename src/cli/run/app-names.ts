/** Words for the app id `courier run` makes up when none is given (like `dapr run`'s `adjective-noun`). */
const adjectives = [
  'amber', 'brave', 'brisk', 'calm', 'clever', 'cosmic', 'curious', 'daring', 'eager', 'fancy',
  'gentle', 'glad', 'golden', 'happy', 'humble', 'jolly', 'keen', 'kind', 'lively', 'lucky',
  'mellow', 'merry', 'nimble', 'noble', 'proud', 'quick', 'quiet', 'rapid', 'rustic', 'shiny',
  'silent', 'sleepy', 'snappy', 'sunny', 'swift', 'tidy', 'vivid', 'witty', 'young', 'zesty',
] as const;

const nouns = [
  'badger', 'beacon', 'bison', 'canyon', 'comet', 'condor', 'falcon', 'fjord', 'gecko', 'glacier',
  'harbor', 'heron', 'island', 'jaguar', 'kestrel', 'koala', 'lagoon', 'lemur', 'lynx', 'meadow',
  'meteor', 'moose', 'narwhal', 'nebula', 'otter', 'panda', 'pebble', 'pelican', 'puffin', 'quasar',
  'raven', 'river', 'saddle', 'salmon', 'sparrow', 'summit', 'tiger', 'tundra', 'walrus', 'willow',
] as const;

/** A random lower-case `adjective-noun` app id, e.g. `brisk-otter` (a name, not a secret: Math.random will do). */
export function randomAppId(pick: (n: number) => number = (n) => Math.floor(Math.random() * n)): string {
  return `${adjectives[pick(adjectives.length)] ?? 'quick'}-${nouns[pick(nouns.length)] ?? 'otter'}`;
}
