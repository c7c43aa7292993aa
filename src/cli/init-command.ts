import { existsSync, mkdirSync, writeFileSync } from '../util/builtins.js';
import { join } from 'node:path';
import { courierHome } from '../runtime/options.js';
import { ensurePrivateDirectory } from '../util/private-files.js';
import { loadOrCreateCa, loadOrCreateTokenSecret } from '../security/index.js';
import { DEFAULT_WORKLOAD_TRUST_DOMAIN } from '../sentry/names.js';
import { formatFlagHelp, parseFlags, type FlagSpec } from './flags.js';

const initFlags: readonly FlagSpec[] = [{ name: 'help', short: 'h', type: 'bool', help: 'show this help' }];

const usage = `Usage: courier init

Sets up Courier on this machine, in $COURIER_HOME (default ~/.courier), like "dapr init --slim":
  config.yaml   a Configuration with mutual TLS on and an access-control policy that allows all calls
  certs/        a certificate authority (ca.crt, issuer.crt, issuer.key) and the key join tokens are made with
  components/   the default resources directory (Courier uses no components; it is read for compatibility)
Afterwards "courier run" starts a local Sentry and turns on mTLS by itself. Existing files are kept.

Flags:
${formatFlagHelp(initFlags)}
`;

/** The Configuration `courier init` writes. */
export const initialConfiguration = `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: courierconfig
spec:
  mtls:
    enabled: true
    workloadCertTTL: 24h
    allowedClockSkew: 15m
  accessControl:
    defaultAction: allow
    trustDomain: public
`;

export async function initMain(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags('init', argv, initFlags);
  if (values.get('help') === true) {
    process.stdout.write(usage);
    return 0;
  }
  const home = courierHome();
  ensurePrivateDirectory(home);
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const certs = join(home, 'certs');
  const { created } = await loadOrCreateCa(certs, { trustDomain: DEFAULT_WORKLOAD_TRUST_DOMAIN });
  loadOrCreateTokenSecret(certs);
  say(created ? `✅  Created a certificate authority in ${certs}` : `ℹ️  Kept the certificate authority in ${certs}`);
  const config = join(home, 'config.yaml');
  if (existsSync(config)) {
    say(`ℹ️  Kept ${config}`);
  } else {
    writeFileSync(config, initialConfiguration, { mode: 0o600 });
    say(`✅  Wrote ${config} (mutual TLS on, all calls allowed)`);
  }
  const components = join(home, 'components');
  mkdirSync(components, { recursive: true });
  say(`✅  Courier is set up in ${home}. "courier run" now starts a local Sentry and uses mTLS.`);
  return 0;
}
